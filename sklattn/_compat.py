"""Loading estimators pickled by an earlier version of sklattn."""

from __future__ import annotations

import inspect


def fill_new_parameters(estimator) -> None:
    """Give an estimator unpickled from an earlier version the values of the parameters
    it did not have then, so that it loads, clones, prints and predicts as it did.

    A class lists in ``_legacy_parameters`` the values that reproduce its earlier
    behaviour where they differ from the current defaults; the others take the default.
    """
    legacy = getattr(type(estimator), "_legacy_parameters", {})
    for name, parameter in inspect.signature(type(estimator).__init__).parameters.items():
        if parameter.default is not inspect.Parameter.empty and name not in vars(estimator):
            setattr(estimator, name, legacy.get(name, parameter.default))
