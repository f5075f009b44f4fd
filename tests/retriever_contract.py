"""scikit-learn's estimator contract for the retrievers (MIND, SASRec, BERT4Rec).

X is a DataFrame of encoded columns; the tags say so (two_d_array=False), and
scikit-learn then generates only check_estimator_cloneable: every other generated check
feeds numeric arrays. The API checks that need no data run as generated, and the rest of
the contract runs on encoded frames (:func:`check_encoded_frame_contract`). A test module
calls :func:`contract_tests` with its estimator and binds the returned tests to names.
"""

import inspect
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError, SkipTestWarning
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_repr,
    check_estimator_tags_renamed,
    check_estimators_unfitted,
    check_get_params_invariance,
    check_mixin_order,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    check_transformers_unfitted,
    check_valid_tag_types,
    estimator_checks_generator,
    parametrize_with_checks,
)
from sklearn.utils.validation import check_is_fitted

from sklattn.base import expected_failed_checks

# Skipped by the generator along with the array checks, but they fit nothing.
NO_DATA_CHECKS = [
    check_estimator_tags_renamed, check_valid_tag_types, check_estimator_repr,
    check_no_attributes_set_in_init, check_estimators_unfitted, check_transformers_unfitted,
    check_do_not_raise_errors_in_init_or_set_params, check_mixin_order,
    check_parameters_default_constructible, check_get_params_invariance, check_set_params,
]


def with_id(E: pd.DataFrame, column: str, value: float) -> pd.DataFrame:
    """``E`` with ``column`` as floats and ``value`` in its first row."""
    broken = E.astype({column: float})
    broken.iloc[0, broken.columns.get_loc(column)] = value
    return broken


def contract_tests(checked):
    """The contract's tests for the (unfitted) estimator ``checked``:
    ``(test_sklearn_generated_checks, test_tags_describe_encoded_frames,
    test_sklearn_checks_that_need_no_data)``."""
    with warnings.catch_warnings():
        # scikit-learn warns that it cannot test an estimator without two_d_array
        # (asserted in test_tags_describe_encoded_frames).
        warnings.simplefilter("ignore", SkipTestWarning)
        generated = parametrize_with_checks(
            [checked], expected_failed_checks=expected_failed_checks)

    @generated
    def test_sklearn_generated_checks(estimator, check):
        check(estimator)

    def test_tags_describe_encoded_frames():
        tags = get_tags(checked)
        assert not tags.input_tags.two_d_array and tags.input_tags.categorical
        assert not (tags.input_tags.string or tags.input_tags.allow_nan
                    or tags.input_tags.sparse)
        assert not tags.target_tags.required and tags.requires_fit
        assert tags.transformer_tags.preserves_dtype == []  # transform gives float32 always
        name = type(checked).__name__
        with pytest.warns(SkipTestWarning, match=f"Can't test estimator {name}"):
            names = [check.func.__name__
                     for _, check in estimator_checks_generator(checked, mark=None)]
        assert names == ["check_estimator_cloneable"]

    @pytest.mark.parametrize("check", NO_DATA_CHECKS, ids=lambda check: check.__name__)
    def test_sklearn_checks_that_need_no_data(check, request):
        reason = expected_failed_checks(checked).get(check.__name__)
        if reason:
            request.applymarker(pytest.mark.xfail(reason=reason, strict=True))
        check(type(checked).__name__, clone(checked))

    return (test_sklearn_generated_checks, test_tags_describe_encoded_frames,
            test_sklearn_checks_that_need_no_data)


def check_encoded_frame_contract(checked, E: pd.DataFrame, serving: tuple[str, ...]) -> None:
    """What scikit-learn's array checks verify, on the encoded frame ``E`` (history
    ``hist_item_1..N``) the retriever accepts. ``serving``: the names of its methods
    that read X after fit."""
    est = clone(checked)
    # check_fit_score_takes_y: y comes second everywhere (and is ignored).
    for method in ("fit", "partial_fit", "score", "fit_transform"):
        assert list(inspect.signature(getattr(est, method)).parameters)[:2] == ["X", "y"]
    # check_fit_check_is_fitted, check_estimators_unfitted.
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    for name in serving:
        with pytest.raises(NotFittedError):
            getattr(est, name)(E)
    # Errors before any training: arrays and sparse matrices (clear TypeError), no rows
    # (check_estimators_empty_data_messages), NaN / inf ids (check_estimators_nan_inf),
    # sample weights of the wrong length or all zero (check_sample_weights_shape,
    # check_all_zero_sample_weights_error).
    for X in (E.to_numpy(), sp.csr_matrix(E.to_numpy(dtype=float))):
        with pytest.raises(TypeError, match="DataFrame"):
            clone(est).fit(X)
    with pytest.raises(ValueError, match="0 sample"):
        clone(est).fit(E.iloc[:0])
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="hist_item_2"):
            clone(est).fit(with_id(E, "hist_item_2", bad))
    with pytest.raises(ValueError, match="inconsistent|shape"):
        clone(est).fit(E, sample_weight=np.ones(len(E) - 1))
    with pytest.raises(ValueError, match="zero"):
        clone(est).fit(E, sample_weight=np.zeros(len(E)))

    # fit returns self, adds only private or fitted (trailing _) attributes, keeps its
    # parameters and the caller's weights (check_estimators_fit_returns_self,
    # check_dont_overwrite_parameters, check_estimators_overwrite_params,
    # check_sample_weights_pandas_series, check_sample_weights_not_overwritten).
    params, before = joblib.hash(est.get_params()), set(vars(est))
    weights = pd.Series(np.linspace(0.5, 1.5, len(E)))
    kept = weights.copy()
    assert est.fit(E, sample_weight=weights) is est
    pd.testing.assert_series_equal(weights, kept)
    assert all(a.startswith("_") or a.endswith("_") for a in set(vars(est)) - before)
    assert joblib.hash(est.get_params()) == params
    check_is_fitted(est)
    assert est.n_iter_ == 1  # check_transformer_n_iter
    # check_n_features_in, check_n_features_in_after_fitting.
    assert est.n_features_in_ == E.shape[1]
    assert list(est.feature_names_in_) == list(E.columns)
    with pytest.raises(ValueError, match="hist_item_1"):
        est.predict(E.drop(columns="hist_item_1"))
    # Arrays after fit: the same clear error from every serving method.
    for name in serving:
        with pytest.raises(TypeError, match="DataFrame"):
            getattr(est, name)(E.to_numpy())

    # check_dict_unchanged: serving never changes the estimator (the index is built in fit).
    state = dict(vars(est))
    top = est.predict(E)
    for name in serving:
        getattr(est, name)(E)
    est.retrieve(E, top_n=3)
    assert vars(est).keys() == state.keys()
    assert all(vars(est)[k] is v for k, v in state.items())
    # check_estimators_dtypes: integral ids of any numeric dtype give the same answer.
    np.testing.assert_array_equal(est.predict(E.astype(np.float64)), top)
    np.testing.assert_array_equal(est.predict(E.astype({"hist_item_1": np.int32})), top)
    # check_transformer_general, check_fit_idempotent: fit_transform is fit then
    # transform, and the same seed, data and (list) weights give the same model.
    np.testing.assert_allclose(clone(est).fit_transform(E, sample_weight=list(weights)),
                               est.transform(E), atol=1e-6)
    # check_fit2d_1sample: one row is enough.
    assert clone(est).fit(E.iloc[:1]).predict(E.iloc[:3]).shape == (3, est.top_n)
    # partial_fit: one more epoch per call.
    partial = clone(est).partial_fit(E)
    assert partial.n_iter_ == 1
    partial.partial_fit(E)
    assert partial.n_iter_ == 2
