"""scikeras, the optional extra: a custom architecture built from ``sklattn.layers``.

A ``SequenceEncoder`` feeds a small category-level DIN (embedding, DIN's activation unit or
masked mean pooling, MLP) wrapped in scikeras's ``KerasClassifier``, tuned by ``GridSearchCV``.
The example in the documentation ("scikeras: an optional extra") is this module's code.
"""

import numpy as np
import pytest
from sklearn.base import is_classifier
from sklearn.metrics import get_scorer, roc_auc_score
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils import ClassifierTags

# sklattn first: it imports TensorFlow quietly, scikeras (which imports Keras) then reuses it.
from sklattn import SequenceEncoder
from sklattn._backend import keras
from sklattn.datasets import make_interest_sequences
from sklattn.layers import MLP, ActivationUnit, Embedding, MaskedPooling
from sklattn.preprocessing import PAD_ID

scikeras = pytest.importorskip("scikeras")
wrappers = pytest.importorskip("scikeras.wrappers")

ops = keras.ops
SEQUENCES = {"hist_item": "item", "hist_cat": "cat"}


class TaggedKerasClassifier(wrappers.KerasClassifier):
    """``KerasClassifier`` that scikit-learn >= 1.6 recognises as a classifier.

    scikeras 0.13 lists ``BaseEstimator`` before ``ClassifierMixin`` in its bases, so
    ``BaseEstimator.__sklearn_tags__`` wins and the tags say ``estimator_type=None``
    (``_estimator_type = "classifier"`` is no longer read). This sets what
    ``ClassifierMixin.__sklearn_tags__`` would have set.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags()
        tags.target_tags.required = True
        return tags


def category_din(schema, sequence="hist_cat", pooling="attention", embedding_dim=4,
                 meta=None, compile_kwargs=None):
    """Attention of the candidate's category over the history's categories.

    scikeras hands the model one float matrix (the encoder's DataFrame as an array), so
    the columns are found by position: the id columns (``schema.int_columns``) come first,
    the numeric ones last. float32 holds ids exactly up to 2**24.
    """
    _, vocabulary = schema.sequences[sequence]
    n_ids = len(schema.int_columns)
    x = keras.Input(shape=(meta["n_features_in_"],), dtype="float32")
    ids = ops.cast(x[:, :n_ids], "int32")
    history_ids = ops.take(ids, np.asarray(schema.sequence_positions(sequence)), axis=1)
    candidate_ids = ops.take(ids, np.asarray(schema.positions([vocabulary])), axis=1)
    # One table for the sequence and its candidate, sized by the schema given as a parameter.
    table = Embedding(schema.vocabulary_sizes[vocabulary], embedding_dim)
    history = table(history_ids)  # (batch, steps, dim)
    candidate = table(candidate_ids)[:, 0]  # (batch, dim)
    valid = history_ids != PAD_ID
    if pooling == "attention":
        interest, _ = ActivationUnit((8,), activation="sigmoid")(candidate, history, valid)
    else:
        interest = MaskedPooling("mean")(history, valid)
    features = ops.concatenate(
        [interest, candidate, interest * candidate, x[:, n_ids:]], axis=-1
    )
    proba = keras.layers.Dense(1, activation="sigmoid")(MLP((16,))(features))
    model = keras.Model(x, proba)
    model.compile(**compile_kwargs)
    return model


def scikeras_pipeline(schema, classifier=TaggedKerasClassifier, **params):
    """Encoder + wrapped model. ``schema`` comes from an encoder fitted on all the training
    data: a CV fold's encoder sees a subset of the rows, so its vocabularies are subsets and
    these table sizes bound its ids (rows for values absent from a fold are never looked up)."""
    model = classifier(
        model=category_din,
        model__schema=schema,
        loss="binary_crossentropy",
        optimizer="adam",
        optimizer__learning_rate=1e-2,
        epochs=8,
        batch_size=64,
        verbose=0,
        random_state=0,
        **params,
    )
    return Pipeline([("encode", SequenceEncoder(sequences=SEQUENCES)), ("clf", model)])


@pytest.fixture(scope="module")
def data():
    X, y = make_interest_sequences(n_samples=2500, maxlen=8, random_state=0)
    return X[:2000], y[:2000], X[2000:], y[2000:]


@pytest.fixture(scope="module")
def search(data):
    X, y, _, _ = data
    schema = SequenceEncoder(sequences=SEQUENCES).fit(X).schema_
    grid = GridSearchCV(
        scikeras_pipeline(schema),
        {"clf__model__pooling": ["mean", "attention"]},
        scoring="roc_auc",
        cv=2,
    )
    return grid.fit(X, y)


def test_grid_search_scores_roc_auc(search):
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all()
    assert search.best_score_ > 0.6


def test_wrapped_model_is_a_classifier(search, data):
    _, y, _, _ = data
    assert is_classifier(search.best_estimator_) and is_classifier(search.best_estimator_[-1])
    # so an integer cv stratifies
    assert isinstance(check_cv(2, y, classifier=is_classifier(search.estimator)), StratifiedKFold)


def test_predict_proba(search, data):
    _, _, X_test, y_test = data
    proba = search.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert roc_auc_score(y_test, proba[:, 1]) > 0.6


def test_plain_keras_classifier_needs_the_tag_workaround(data):
    plain = wrappers.KerasClassifier(model=category_din)
    if is_classifier(plain):
        pytest.skip(
            f"scikeras {scikeras.__version__} reports KerasClassifier as a classifier: "
            "TaggedKerasClassifier is no longer needed"
        )
    X, y, _, _ = data
    X, y = X[:400], y[:400]
    schema = SequenceEncoder(sequences=SEQUENCES).fit(X).schema_
    pipe = scikeras_pipeline(schema, classifier=wrappers.KerasClassifier).set_params(
        clf__epochs=1
    )
    # Without the tag an integer cv does not stratify ...
    assert isinstance(check_cv(2, y, classifier=is_classifier(pipe)), KFold)
    # ... and roc_auc scores both columns of predict_proba, which fails (GridSearchCV turns
    # the error into a NaN score and a warning).
    pipe.fit(X, y)
    with pytest.raises(ValueError, match="1d array"):
        get_scorer("roc_auc")(pipe, X, y)
