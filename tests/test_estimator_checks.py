"""scikit-learn's estimator contract for sklattn's classifiers."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklattn import (
    AFMClassifier,
    BSTClassifier,
    DIENClassifier,
    DINClassifier,
    NFMClassifier,
    SumPoolingClassifier,
)
from sklattn.base import expected_failed_checks

# Settings that let the tiny check datasets be learned in a few fast epochs. PReLU rather than
# Dice: with a handful of batches, Dice's moving averages (momentum 0.99) are still close to
# their initial values at inference, exactly as batch normalisation's would be.
_SMALL = dict(
    activation="prelu", embedding_dim=4, hidden_units=(16,), epochs=12, batch_size=64,
    learning_rate=0.05, random_state=0,
)


# The same training for AFM, which has no MLP. AFM's and NFM's defaults pass
# check_classifiers_train and check_class_weight_classifiers too (tests/test_afm.py), but
# after 5 steps, with probabilities still near 0.5; these settings take 48 steps and reach
# training accuracy 0.97-0.98 and log loss 0.13-0.20 on check_classifiers_train's data
# (seeds 0-4).
_SMALL_AFM = {k: v for k, v in _SMALL.items() if k not in ("activation", "hidden_units")}


@parametrize_with_checks(
    [
        DINClassifier(attention_units=(8,), **_SMALL),
        SumPoolingClassifier(**_SMALL),
        DIENClassifier(gru_units=4, aux_hidden_units=(8,), **_SMALL),
        AFMClassifier(attention_factor=4, **_SMALL_AFM),
        NFMClassifier(**_SMALL),
        BSTClassifier(**_SMALL),
    ],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_contract(estimator, check):
    check(estimator)
