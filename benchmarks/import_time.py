"""Import time of sklattn, and whether an import pulls in TensorFlow.

Each statement runs in a fresh interpreter, ``--repeats`` times; the script prints one
JSON line per statement with the median, min and max wall-clock seconds of the whole
process (interpreter start-up included; ``python -c pass`` is the floor) and whether
``tensorflow`` ended up in ``sys.modules``.

    python benchmarks/import_time.py                      # this checkout
    python benchmarks/import_time.py --path ../other/tree # another checkout of sklattn

``--path`` puts that folder first on ``sys.path``, so an older tree can be measured on
the same machine in the same run for a before/after comparison.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import emit

STATEMENTS = {
    "python -c pass": "pass",
    "import sklattn": "import sklattn",
    "from sklattn import SequenceEncoder": "from sklattn import SequenceEncoder",
    "import sklattn.datasets, sklattn.metrics":
        "import sklattn.datasets, sklattn.metrics",
    "from sklattn import DINClassifier": "from sklattn import DINClassifier",
}

PROBE = "\nimport sys\nprint('tensorflow' in sys.modules)"


def run(statement: str, path: Path, repeats: int) -> tuple[list[float], bool]:
    env = {**os.environ, "PYTHONPATH": f"{path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    times, loaded = [], False
    for _ in range(repeats):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", statement + PROBE], env=env, check=True,
            capture_output=True, text=True, cwd=path,
        )
        times.append(time.perf_counter() - start)
        loaded = out.stdout.strip().endswith("True")
    return times, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the checkout whose sklattn is imported")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    path = args.path.resolve()
    for label, statement in STATEMENTS.items():
        times, loaded = run(statement, path, args.repeats)
        times.sort()
        emit(
            benchmark="import_time", tree=str(path), statement=label,
            median_s=times[len(times) // 2], min_s=times[0], max_s=times[-1],
            repeats=args.repeats, tensorflow_imported=loaded,
        )


if __name__ == "__main__":
    main()
