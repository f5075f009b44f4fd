"""scikit-learn's estimator checks on every sklattn estimator with DEFAULT parameters.

The test suite runs ``parametrize_with_checks`` with small, fast settings; this script
runs ``check_estimator(Estimator(), expected_failed_checks=expected_failed_checks(est))``
on the defaults a user gets (only ``random_state=0`` added, for repeatable numbers) and
prints one JSON line per estimator: checks passed, expected failures (declared by the
estimator, each with its reason), unexpected failures (should be 0) and skipped, with the
wall time. Takes several minutes on 2 cores.

    python benchmarks/estimator_checks.py [--only DINClassifier ...]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import Counter

from _common import emit
from sklearn.utils.estimator_checks import check_estimator

import sklattn
from sklattn.base import expected_failed_checks

ESTIMATORS = ["DINClassifier", "SumPoolingClassifier", "DIENClassifier", "AFMClassifier",
              "NFMClassifier", "MINDRetriever"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=ESTIMATORS)
    args = parser.parse_args()
    for name in args.only:
        estimator = getattr(sklattn, name)(random_state=0)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = check_estimator(
                estimator, expected_failed_checks=expected_failed_checks(estimator),
                on_fail=None, on_skip=None,
            )
        status = Counter(r["status"] for r in results)
        unexpected = sorted(r["check_name"] for r in results
                            if r["status"] == "failed" and not r["expected_to_fail"])
        xpassed = sorted(r["check_name"] for r in results
                         if r["status"] == "passed" and r["expected_to_fail"])
        emit(benchmark="estimator_checks", estimator=name, parameters="defaults",
             passed=status["passed"], expected_failures=status["xfail"],
             unexpected_failures=len(unexpected), failed_checks=unexpected,
             skipped=status["skipped"], expected_but_passed=xpassed,
             seconds=time.perf_counter() - start)


if __name__ == "__main__":
    main()
