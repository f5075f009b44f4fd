"""Loading estimators pickled by an earlier version of sklattn."""

from __future__ import annotations

import inspect


def fill_new_parameters(estimator) -> None:
    """Give an estimator unpickled from an earlier version the defaults of the parameters
    it did not have then, so that it loads, clones, prints and predicts as it did."""
    for name, parameter in inspect.signature(type(estimator).__init__).parameters.items():
        if parameter.default is not inspect.Parameter.empty and name not in vars(estimator):
            setattr(estimator, name, parameter.default)
