"""Out-of-core DIN training from Parquet against the same fit in memory: rows/s and peak RSS.

Writes a synthetic click log to a temporary folder of Parquet files
(``make_interest_sequences`` in chunks of ``--write-rows``: 200,000 items, histories of
up to 50, item and category ids as strings; each chunk has its own seed, so the data is
for speed and memory, not accuracy). Then, each in a fresh process so that its peak RSS
is its own:

* ``stream``: what a user writes, ``make_pipeline(SequenceEncoder(...),
  DINClassifier(epochs=1)).fit(DataStream(folder, chunk_rows=...), y="label")``, timed in
  its two steps: the encoder's pass over the files (encoder rows/s), then the model's
  fit on the encoded stream (training rows/s: its counting pass and one epoch through
  the shuffle buffer, 262,144 rows);
* ``stream_cache``: the same with ``DataStream(..., cache=True)``: the counting pass
  keeps the converted rows on local disk and the epochs read them back;
* ``partial_fit``: the manual recipe, ``iter_parquet`` chunks of ``--chunk-rows``;
  pass 1 ``SequenceEncoder.partial_fit``, pass 2 one epoch of
  ``DINClassifier.partial_fit`` on each encoded chunk;
* ``in_memory``: the whole folder read into one DataFrame, ``fit_transform``, one epoch
  of ``DINClassifier.fit``.

DIN: embedding 8, ReLU, batch 1,024, MLP (64, 32), attention (32, 16). One JSON line
per mode and size, with the stream/in-memory training ratio.

Usage: ``python benchmarks/out_of_core.py [--rows 1000000,3000000] [--chunk-rows 65536]
[--modes stream,stream_cache,partial_fit,in_memory] [--epochs 3]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import emit

SEQUENCES = {"hist_item": "item", "hist_cat": "cat"}
MODEL = dict(embedding_dim=8, activation="relu", batch_size=1024, hidden_units=(64, 32),
             attention_units=(32, 16), random_state=0)


def write_log(folder: Path, n_rows: int, write_rows: int) -> float:
    """Write ``n_rows`` synthetic rows as Parquet files of ``write_rows``; seconds."""
    from sklattn.datasets import make_interest_sequences

    start = time.perf_counter()
    for k, first in enumerate(range(0, n_rows, write_rows)):
        n = min(write_rows, n_rows - first)
        X, y = make_interest_sequences(n, n_items=200_000, n_categories=100, maxlen=50,
                                       random_state=k)
        X = X.drop(columns="user_activity")
        for c in X.columns:
            if c.startswith(("hist_item", "hist_cat")) or c in ("item", "cat"):
                X[c] = ("i" + X[c].astype("string")).astype("string[pyarrow]")
        X["user"] = X["user"] + first  # users of different chunks are different people
        X.assign(label=y).to_parquet(folder / f"part-{k:04d}.parquet", index=False)
        del X, y
    return time.perf_counter() - start


def run_mode(mode: str, folder: str, chunk_rows: int, epochs: int = 1) -> dict:
    from sklattn import DINClassifier, SequenceEncoder
    from sklattn.datasets import iter_parquet

    out: dict = {"mode": mode, "epochs": epochs}
    if mode in ("stream", "stream_cache"):
        from sklattn.datasets import DataStream

        stream = DataStream(folder, chunk_rows=chunk_rows, label="label",
                            cache=mode == "stream_cache")
        encoder = SequenceEncoder(sequences=SEQUENCES, categorical=["user"])
        start = time.perf_counter()
        encoder.fit(stream)
        rows = stream.n_rows
        out["encoder_rows_per_s"] = rows / (time.perf_counter() - start)
        start = time.perf_counter()
        model = DINClassifier(epochs=epochs, **MODEL).fit(encoder.transform(stream), y="label")
        out["train_rows_per_s"] = rows * epochs / (time.perf_counter() - start)
        out["rows_read"] = rows
        out["rows_held"] = model._stream_rows_held
        # The fit in its two steps: the counting pass, and the epochs.
        out["count_seconds"] = model._stream_seconds["count"]
        out["epoch_rows_per_s"] = rows * epochs / model._stream_seconds["epochs"]
    elif mode == "partial_fit":
        features = None
        encoder = SequenceEncoder(sequences=SEQUENCES, categorical=["user"])
        start, rows = time.perf_counter(), 0
        for chunk in iter_parquet(folder, batch_rows=chunk_rows):
            features = [c for c in chunk.columns if c != "label"]
            encoder.partial_fit(chunk[features])
            rows += len(chunk)
        out["encoder_rows_per_s"] = rows / (time.perf_counter() - start)
        model = DINClassifier(**MODEL)
        start = time.perf_counter()
        for chunk in iter_parquet(folder, batch_rows=chunk_rows):
            model.partial_fit(encoder.transform(chunk[features]), chunk["label"],
                              classes=[0, 1])
        out["train_rows_per_s"] = rows / (time.perf_counter() - start)
        out["rows_read"] = rows
    else:
        import pandas as pd

        start = time.perf_counter()
        frame = pd.concat(list(iter_parquet(folder, batch_rows=1 << 20)), ignore_index=True)
        out["read_seconds"] = time.perf_counter() - start
        y = frame.pop("label").to_numpy()
        start = time.perf_counter()
        encoded = SequenceEncoder(sequences=SEQUENCES, categorical=["user"]).fit_transform(frame)
        out["encoder_rows_per_s"] = len(frame) / (time.perf_counter() - start)
        del frame
        start = time.perf_counter()
        DINClassifier(epochs=epochs, **MODEL).fit(encoded, y)
        out["train_rows_per_s"] = len(y) * epochs / (time.perf_counter() - start)
        out["rows_read"] = len(y)
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000")
    parser.add_argument("--chunk-rows", type=int, default=65_536)
    parser.add_argument("--epochs", type=int, default=1,
                        help="epochs of the stream and in-memory fits (partial_fit: 1)")
    parser.add_argument("--write-rows", type=int, default=200_000)
    parser.add_argument("--modes", default="stream,in_memory",
                        help="in_memory needs about 5.6 GB per million rows")
    parser.add_argument("--mode", help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.folder, args.chunk_rows, args.epochs)),
              flush=True)
        return
    for n_rows in (int(r) for r in args.rows.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            seconds = write_log(Path(tmp), n_rows, args.write_rows)
            size = sum(f.stat().st_size for f in Path(tmp).glob("*.parquet")) / 2**30
            results = {}
            for mode in args.modes.split(","):
                done = subprocess.run(
                    [sys.executable, __file__, "--mode", mode, "--folder", tmp,
                     "--chunk-rows", str(args.chunk_rows), "--epochs", str(args.epochs)],
                    capture_output=True, text=True,
                )
                if done.returncode:
                    emit(benchmark="out_of_core", rows=n_rows, mode=mode,
                         failed=done.stderr[-500:])
                    continue
                results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
                emit(benchmark="out_of_core", rows=n_rows, parquet_gb=size,
                     write_seconds=seconds, chunk_rows=args.chunk_rows, **results[mode])
            if "in_memory" in results:
                memory = results["in_memory"]
                for mode in ("stream", "stream_cache", "partial_fit"):
                    if mode in results:
                        emit(benchmark="out_of_core", rows=n_rows, metric="summary", mode=mode,
                             train_over_in_memory=results[mode]["train_rows_per_s"]
                             / memory["train_rows_per_s"],
                             rss_over_in_memory=results[mode]["peak_rss_gb"]
                             / memory["peak_rss_gb"])


if __name__ == "__main__":
    main()
