"""AFM's and NFM's default parameters on tiny data and on MovieLens-100k, over seeds.

Two tasks, JSON lines:

* ``checks``: the data of scikit-learn's ``check_classifiers_train`` (200 rows of two
  standardised blobs, which the check rounds to integers 0-4 because sklattn's
  estimators declare categorical input; training accuracy must exceed 0.83) and
  ``check_class_weight_classifiers`` (50 noisy rows, ``class_weight={0: 1000, 1: 1e-4}``;
  more than 87% of the test rows must be predicted 0), with training log loss and the
  checks' own verdicts.
* ``movielens``: test AUC on MovieLens-100k as in ``afm_benchmark.py --task movielens``
  (time split, rating >= 4 = click), with and without the history fields.

Parameters left out take the estimators' defaults, so ``python
benchmarks/fm_defaults.py`` measures the defaults; ``--learning-rate 1e-3 --epochs 3``
gives the settings of the README's MovieLens table.

Usage: ``python benchmarks/fm_defaults.py [--task both] [--seeds 0 1 2]
[--learning-rate LR] [--epochs N] [--batch-size N] [--models AFM NFM]``
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from _common import emit, movielens_ctr, require_shared_data, timed
from sklearn.datasets import make_blobs
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.utils import shuffle
from sklearn.utils.estimator_checks import (
    check_class_weight_classifiers,
    check_classifiers_train,
)

from sklattn import AFMClassifier, NFMClassifier, SequenceEncoder

TABULAR = ["user_id", "item_id", "genre", "gender", "age", "occupation", "zip_code"]
HISTORY = {"hist_item_id": "item_id", "hist_genre": "genre"}
MODELS = {"AFM": AFMClassifier, "NFM": NFMClassifier}


def check_data():
    """The datasets of the two scikit-learn checks, built as the checks build them."""
    X, y = make_blobs(n_samples=300, random_state=0)
    X, y = shuffle(X, y, random_state=7)
    X = StandardScaler().fit_transform(X)
    # What the check's _enforce_estimator_tags_X does for the tag input_tags.categorical.
    X = np.round(X - X.min()).astype(np.int32)
    train = (X[y != 2], y[y != 2])
    X, y = make_blobs(centers=2, random_state=0, cluster_std=20)
    weighted = train_test_split(X, y, test_size=0.5, random_state=0)
    return train, weighted


def passes(check, name, est) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check(name, est)
    except AssertionError:
        return False
    return True


def checks(args, params: dict) -> None:
    (X, y), (X_tr, X_te, y_tr, _) = check_data()
    for name in args.models:
        cls = MODELS[name]
        # The checks themselves set random_state=0.
        emit(
            benchmark="fm_defaults", task="checks", model=name, **params,
            check_classifiers_train=passes(check_classifiers_train, name, cls(**params)),
            check_class_weight_classifiers=passes(
                check_class_weight_classifiers, name, cls(**params)),
        )
        for seed in args.seeds:
            est, seconds = timed(lambda cls=cls, seed=seed: cls(
                **params, random_state=seed).fit(X, y))
            weighted = cls(**params, random_state=seed, class_weight={0: 1000, 1: 1e-4},
                           n_iter_no_change=20).fit(X_tr, y_tr)
            emit(
                benchmark="fm_defaults", task="checks", model=name, seed=seed, **params,
                train_accuracy=float((est.predict(X) == y).mean()),
                train_log_loss=log_loss(y, est.predict_proba(X)), fit_seconds=seconds,
                class_weight_fraction_0=float((weighted.predict(X_te) == 0).mean()),
            )


def movielens(args, params: dict) -> None:
    if not require_shared_data():
        return
    X_train, X_test, y_train, y_test = movielens_ctr(
        user_columns=("gender", "age", "occupation", "zip_code")
    )
    for history in (True, False):
        encoder = SequenceEncoder(sequences=HISTORY if history else None,
                                  categorical=["user_id", "item_id", "age"])
        columns = slice(None) if history else TABULAR
        E_train = encoder.fit_transform(X_train[columns])
        E_test = encoder.transform(X_test[columns])
        for name in args.models:
            aucs = []
            for seed in args.seeds:
                est, seconds = timed(lambda name=name, seed=seed, E=E_train: MODELS[name](
                    **params, random_state=seed).fit(E, y_train))
                aucs.append(roc_auc_score(y_test, est.decision_function(E_test)))
                emit(benchmark="fm_defaults", task="movielens", history=history, model=name,
                     seed=seed, **params, auc=aucs[-1], fit_seconds=seconds)
            emit(benchmark="fm_defaults", task="movielens", history=history, model=name,
                 **params, seeds=args.seeds, auc_mean=float(np.mean(aucs)),
                 auc_min=float(np.min(aucs)), auc_max=float(np.max(aucs)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["checks", "movielens", "both"], default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    args = parser.parse_args()
    params = {k: v for k, v in (("learning_rate", args.learning_rate), ("epochs", args.epochs),
                                ("batch_size", args.batch_size)) if v is not None}
    if args.task in ("checks", "both"):
        checks(args, params)
    if args.task in ("movielens", "both"):
        movielens(args, params)


if __name__ == "__main__":
    main()
