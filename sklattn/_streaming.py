"""Training and prediction on a :class:`~sklattn.datasets.DataStream`, in bounded memory.

``BaseKerasEstimator.fit`` hands a stream here. One pass counts what a fit in memory
takes from the whole data (rows, labels, vocabulary sizes, id counts, a sample for the
model's statistics hooks); the model is built from it; then each epoch reads the stream
again, fills the shuffle buffer with converted rows and feeds Keras batches through a
prefetching ``tf.data`` pipeline. Prediction yields one array per chunk.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ._backend import keras, tf
from ._data import as_frame, resolve_schema, to_arrays
from ._schema import Schema
from .datasets._stream import DataStream, RowProgress, annotate, split_label

#: Rows kept for the statistics a model takes from its training data
#: (``_set_data_statistics``): a uniform sample, all rows of a smaller stream.
STATISTICS_SAMPLE = 1 << 19


@dataclass
class _Counts:
    """What one pass over a stream learns (see :func:`_count_stream`)."""

    rows: dict = field(default_factory=dict)  # part -> rows
    labels: dict = field(default_factory=dict)  # raw label -> rows
    ids: dict = field(default_factory=dict)  # vocabulary -> id counts
    sample: list = field(default_factory=list)  # (keys, index, ids, floats, labels, weights)
    first: tuple | None = None  # (features, labels, weights) of the first chunk
    n_rows: int = 0
    cache: _ChunkCache | None = None  # the converted chunks, when the stream caches


class _ChunkCache:
    """The converted chunks of a stream on local disk, one ``.npz`` file each, so that
    the epochs after the counting pass neither read the source nor encode again.

    Labels are kept as codes in order of first appearance (a stream's labels are
    known only at the end of the pass); ``targets`` maps them once they are.
    """

    def __init__(self, parent) -> None:
        self.folder = tempfile.mkdtemp(prefix="sklattn-stream-", dir=parent)
        self.files: dict = {}  # part -> its chunks' files
        self.codes: dict = {}  # label -> code
        self.targets: np.ndarray | None = None  # code -> target

    def add(self, part, ids, floats, labels, weights) -> None:
        arrays = {}
        if ids is not None:
            arrays["ids"] = ids
        if floats is not None:
            arrays["floats"] = floats
        if labels is not None:
            values, inverse = np.unique(labels, return_inverse=True)
            for value in values.tolist():
                self.codes.setdefault(value, len(self.codes))
            codes = np.array([self.codes[v] for v in values.tolist()], dtype=np.int8)
            arrays["codes"] = codes[inverse.reshape(-1)]
        if weights is not None:
            arrays["weights"] = weights
        path = os.path.join(self.folder, f"{sum(map(len, self.files.values())):08d}.npz")
        np.savez(path, **arrays)
        self.files.setdefault(part, []).append(path)

    def read(self, parts) -> Iterator[tuple]:
        """``(ids, floats, targets, weights)`` of each chunk of ``parts``, in order."""
        for part in parts:
            for path in self.files[part]:
                with np.load(path) as data:
                    codes = data["codes"] if "codes" in data else None
                    yield (
                        data["ids"] if "ids" in data else None,
                        data["floats"] if "floats" in data else None,
                        None if codes is None else self.targets[codes],
                        data["weights"] if "weights" in data else None,
                    )

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _merge_schema(schema: Schema, other: Schema) -> Schema | None:
    """``schema`` with the larger vocabulary sizes of ``other`` (roles from parameters,
    counted chunk by chunk), or None when nothing grew."""
    sizes = {
        v: max(n, other.vocabulary_sizes.get(v, n)) for v, n in schema.vocabulary_sizes.items()
    }
    if sizes == dict(schema.vocabulary_sizes):
        return None
    return replace(schema, vocabulary_sizes=sizes)


def _chunk_arrays(estimator, features: pd.DataFrame, *, fresh: bool, first: bool):
    """The id and numeric matrices of one chunk (a fresh fit's first chunk decides the
    schema; roles from parameters grow their vocabularies chunk by chunk)."""
    if fresh and first:
        estimator.schema_ = resolve_schema(estimator, features)
        return to_arrays(estimator, features, reset=True, training=True)
    if fresh and (estimator.sequences is not None or estimator.categorical is not None):
        grown = _merge_schema(estimator.schema_, resolve_schema(estimator, features))
        if grown is not None:
            expected = list(estimator.feature_names_in_)
            if set(map(str, features.columns)) != set(expected):
                return to_arrays(estimator, features, training=True)  # the columns' error
            features = features[expected]
            estimator.schema_ = grown
            return to_arrays(estimator, features, reset=True, training=True)
    return to_arrays(estimator, features, training=True)


def _count_stream(estimator, stream: DataStream, weight_column, *, fresh: bool,
                  label_required: bool, seed, sample: bool, counts: _Counts) -> _Counts:
    rng = np.random.default_rng(seed)
    progress = RowProgress(stream.n_rows) if stream.progress or estimator.verbose else None
    held = 0
    for part, origin, chunk in stream.read(skip_empty=True):
        try:
            features, labels, weights = split_label(
                chunk, stream.label, weight_column, required=label_required
            )
            features = as_frame(features)
            ids, floats = _chunk_arrays(estimator, features, fresh=fresh,
                                        first=counts.first is None)
            if labels is not None:
                labels = np.array(labels)  # a copy: a view would hold the whole chunk
                check_classification_targets(labels)
                values, k = np.unique(labels, return_counts=True)
            if weights is not None:
                _check_weights(weights, weight_column)
        except (ValueError, TypeError) as error:
            raise annotate(origin, error) from error
        n = len(features)
        if counts.first is None:
            counts.first = (features, labels, weights)
        counts.rows[part] = counts.rows.get(part, 0) + n
        if counts.cache is not None:
            counts.cache.add(part, ids, floats, labels, weights)
        if labels is not None:
            for value, c in zip(values.tolist(), k.tolist(), strict=True):
                counts.labels[value] = counts.labels.get(value, 0) + c
            if len(counts.labels) > 2:
                raise ValueError(
                    f"{type(estimator).__name__} predicts click / no click, but the label "
                    f"column {stream.label!r} holds more than 2 values "
                    f"({sorted(map(repr, counts.labels))[:5]}...); in {origin}."
                )
        if ids is not None:
            schema = estimator.schema_
            for vocab in schema.vocabulary_sizes:
                columns = schema.vocabulary_positions(vocab)
                if not len(columns):
                    continue
                add = np.bincount(ids[:, columns].ravel(), minlength=schema.vocabulary_sizes[vocab])
                total = counts.ids.get(vocab)
                if total is not None and len(total) < len(add):
                    total = np.concatenate([total, np.zeros(len(add) - len(total), np.int64)])
                counts.ids[vocab] = add if total is None else total + add
        if sample:
            # A uniform sample: the rows with the smallest random keys, in stream order.
            counts.sample.append((rng.random(n), ids, floats, labels, weights))
            held += n
            if held > STATISTICS_SAMPLE + stream.chunk_rows:
                counts.sample = [_trim_sample(counts.sample)]
                held = len(counts.sample[0][0])
        counts.n_rows += n
        if progress is not None:
            progress.add(n)
    if progress is not None:
        progress.close()
    if counts.first is None:
        raise ValueError(f"{stream!r} holds no rows.")
    if sample:
        counts.sample = [_trim_sample(counts.sample)]
    return counts


def _check_weights(weights: np.ndarray, column: str) -> None:
    if not (np.isfinite(weights).all() and (weights >= 0).all()):
        raise ValueError(f"The weight column {column!r} holds negative, NaN or infinite values.")


def _trim_sample(pieces: list) -> tuple:
    """The ``STATISTICS_SAMPLE`` rows of ``pieces`` with the smallest keys, in stream order."""
    joined = [
        None if any(p[j] is None for p in pieces) else np.concatenate([p[j] for p in pieces])
        for j in range(5)
    ]
    keys = joined[0]
    if len(keys) > STATISTICS_SAMPLE:
        keep = np.sort(np.argpartition(keys, STATISTICS_SAMPLE)[:STATISTICS_SAMPLE])
        joined = [None if a is None else a[keep] for a in joined]
    return tuple(joined)


def _split_parts(estimator, stream: DataStream, parts: list, validate: bool):
    """Training and held-out parts (``validation_fraction`` of the parts, seeded)."""
    fraction = estimator.validation_fraction if validate else None
    if fraction is None:
        return parts, []
    if len(parts) < 2:
        raise ValueError(
            f"validation_fraction={fraction} holds out whole parts of a stream (Parquet row "
            f"groups, list items or chunks), but {stream!r} has only one. Write it in several "
            "files or smaller row groups (row_group_size), or set validation_fraction=None."
        )
    n_val = min(len(parts) - 1, max(1, round(fraction * len(parts))))
    order = np.random.default_rng(estimator._seed()).permutation(len(parts))
    held = set(order[:n_val].tolist())
    return (
        [p for i, p in enumerate(parts) if i not in held],
        [p for i, p in enumerate(parts) if i in held],
    )


def _shuffled_batches(estimator, chunks, parts: list, n_rows: int, *, describe: str,
                      reorderable: bool, buffer_rows: int, shuffle: bool, full: bool, seed,
                      epoch: int) -> Iterator[tuple]:
    """One epoch's batches: the parts in a random order, rows shuffled in the buffer.

    ``chunks(parts)`` yields the converted chunks of ``parts`` in order. ``full`` (XLA)
    fills the last, short batch with copies of its own rows that weigh 0, its real rows
    weighing ``batch_size / k``, as ``base._full_batches`` does in memory.
    """
    batch = estimator.batch_size
    rng = np.random.default_rng(None if seed is None else [seed, epoch])
    if shuffle and reorderable:
        parts = [parts[i] for i in rng.permutation(len(parts))]
    limit = max(buffer_rows, batch) if shuffle else batch
    pending: list[tuple] = []
    held = 0

    def take(block, rows):
        return tuple(None if a is None else a[rows] for a in block)

    seen = 0
    for arrays in chunks(parts):
        seen += len(arrays[2])
        pending.append(arrays)
        held += len(arrays[2])
        estimator._stream_rows_held = max(estimator._stream_rows_held, held)
        if held < limit:
            continue
        block = _concat(pending)
        order = rng.permutation(held) if shuffle else np.arange(held)
        n_full = held // batch * batch
        for start in range(0, n_full, batch):
            yield take(block, order[start : start + batch])
        pending = [take(block, order[n_full:])]
        held -= n_full
    if seen != n_rows:
        raise ValueError(
            f"{describe} gave {seen} rows in this pass but {n_rows} when it was counted: a "
            "stream must give the same rows each time it is read."
        )
    if held:
        block = _concat(pending)
        order = rng.permutation(held) if shuffle else np.arange(held)
        n_full = held // batch * batch
        for start in range(0, n_full, batch):
            yield take(block, order[start : start + batch])
        if held > n_full:
            rest = order[n_full:]
            k = len(rest)
            if full and k < batch:
                fill = rest[np.arange(batch) % k]
                ids, floats, targets, weights = take(block, fill)
                scale = np.where(np.arange(batch) < k, batch / k, 0.0).astype(np.float32)
                weights = scale if weights is None else weights * scale
                yield ids, floats, targets, weights
            else:
                yield take(block, rest)


def _concat(pending: list[tuple]) -> tuple:
    if len(pending) == 1:
        return pending[0]
    return tuple(
        None if pending[0][j] is None else np.concatenate([p[j] for p in pending])
        for j in range(4)
    )


def _dataset(estimator, generate: Callable[[], Iterator[tuple]], n_batches: int, *,
             weighted: bool, errors: list):
    """A prefetching ``tf.data`` pipeline of Keras batches from ``generate`` (called once
    per epoch): reading and encoding the next chunks overlap the training steps."""
    schema = estimator.schema_
    inputs = []
    if schema.int_columns:
        inputs.append(tf.TensorSpec((None, len(schema.int_columns)), tf.int32))
    if schema.numeric:
        inputs.append(tf.TensorSpec((None, len(schema.numeric)), tf.float32))
    x_spec = tuple(inputs) if len(inputs) > 1 else inputs[0]
    signature = (x_spec, tf.TensorSpec((None,), tf.float32))
    if weighted:
        signature = (*signature, tf.TensorSpec((None,), tf.float32))

    def batches():
        try:
            yield from elements()
        except Exception as error:
            # tf.data wraps it in an InvalidArgumentError with a Python traceback:
            # fit_stream raises the error itself instead.
            errors.append(error)
            raise

    def elements():
        for ids, floats, targets, weights in generate():
            x = tuple(a for a in (ids, floats) if a is not None)
            element = (x if len(x) > 1 else x[0], targets)
            if weighted:
                w = np.ones(len(targets), np.float32) if weights is None else weights
                element = (*element, w)
            yield element

    return (
        tf.data.Dataset.from_generator(batches, output_signature=signature)
        .apply(tf.data.experimental.assert_cardinality(n_batches))
        .prefetch(2)
    )


def fit_stream(estimator, stream: DataStream, sample_weight, *, epochs: int, reset: bool,
               classes=None, validate: bool = True):
    """``estimator.fit`` on a stream (see the module's docstring)."""
    from .base import BaseKerasEstimator

    name = type(estimator).__name__
    stream._check()
    if type(estimator)._samples is not BaseKerasEstimator._samples:
        raise TypeError(
            f"{name} trains on whole requests, which the chunks of a stream may split; fit "
            "it on a DataFrame."
        )
    stream = stream.with_weight(sample_weight)
    label_required = estimator.__sklearn_tags__().target_tags.required
    if label_required and stream.label is None:
        raise ValueError(
            f"{name} requires y: with a stream, pass the name of its label column, as in "
            "fit('clicks/', y='label')."
        )
    root = getattr(stream, "_root", stream)
    if not stream.reorderable and not callable(stream.source) and (
        stream.cache is False or root._consumed
    ):
        raise ValueError(
            f"{name}.fit reads its data {epochs + 1} times (once to count, once per epoch), "
            "but an iterator can be read only once. Pass a function that returns a new "
            "iterator (e.g. lambda: pd.read_csv(path, chunksize=100_000)), a list of "
            "DataFrames or a Parquet folder. (With DataStream(..., cache=True) a model "
            "fed by an encoder fitted beforehand trains on an iterator; in a Pipeline the "
            "encoder's fit reads the iterator first.)"
        )
    counts = _Counts()
    try:
        if stream.cache is not False:
            counts.cache = _ChunkCache(None if stream.cache is True else stream.cache)
        return _fit_stream(estimator, stream, epochs=epochs, reset=reset, classes=classes,
                           validate=validate, label_required=label_required, counts=counts)
    except BaseException:
        if reset:  # a failed fit from scratch leaves an unfitted estimator
            estimator._drop_graph()
            for name in _FITTED:
                estimator.__dict__.pop(name, None)
        raise
    finally:
        if counts.cache is not None:
            counts.cache.remove()


#: What a fit from scratch sets; removed again when it fails.
_FITTED = ("model_", "_predict_fn", "_extra_models", "_tables", "_layers", "schema_",
           "classes_", "feature_names_in_", "n_features_in_", "history_", "n_iter_",
           "_stream_label", "_stream_weight")


def _fit_stream(estimator, stream: DataStream, *, epochs: int, reset: bool, classes,
                validate: bool, label_required: bool, counts: _Counts):
    from .base import BaseKerasEstimator, _seeded

    if reset:
        estimator._n_fit_calls = 0
    seed = estimator._seed()
    parts = stream._parts()
    if validate and estimator.validation_fraction is not None and parts is not None:
        _split_parts(estimator, stream, parts, validate)  # one part: say so before reading
    # The statistics hooks of DIN, BST... read only the ids' counts, which come from
    # every row: no sample for them.
    sample = reset and (
        type(estimator)._set_data_statistics is not BaseKerasEstimator._set_data_statistics
    )
    start = time.perf_counter()
    _count_stream(estimator, stream, stream.weight, fresh=reset,
                  label_required=label_required, seed=seed, sample=sample, counts=counts)
    # Where a stream's fit spends its time (benchmarks/out_of_core.py reports it).
    estimator._stream_seconds = {"count": time.perf_counter() - start}
    # Labels over every row: classes_, and class_weight="balanced" from their counts.
    if label_required:
        first = counts.first[1]
        labels = np.unique(np.asarray(list(counts.labels), dtype=(
            object if first.dtype == object else None)))
        estimator._targets(labels, len(labels), reset=reset, classes=classes)
        mapped = estimator._targets(labels, len(labels), reset=False)
        class_rows = {
            t: float(counts.labels[v]) for t, v in zip(mapped.tolist(), labels.tolist(),
                                                      strict=True)
        }
    else:
        class_rows = None

    def targets_and_weights(labels, weights, n):
        return weights_of(estimator._targets(labels, n, reset=False), weights)

    def weights_of(targets, weights):
        if weights is not None:
            _check_weights(weights, stream.weight)
            if not weights.any():  # a chunk of zero weights: allowed in a stream
                return targets, np.zeros(len(targets), np.float32)
        return targets, estimator._sample_weights(weights, targets, class_rows)

    parts = list(counts.rows)  # the parts that hold rows
    train_parts, val_parts = _split_parts(estimator, stream, parts, validate)
    n_train = sum(counts.rows[p] for p in train_parts)
    weight_column = stream.weight
    label = stream.label

    def convert(chunk, origin):
        try:
            features, labels, weights = split_label(chunk, label, weight_column,
                                                    required=label_required)
            ids, floats = to_arrays(estimator, as_frame(features), training=True)
            targets, w = targets_and_weights(labels, weights, len(features))
        except (ValueError, TypeError) as error:
            raise annotate(origin, error) from error
        return ids, floats, targets, w

    cache = counts.cache
    if cache is not None:
        cache.targets = np.zeros(max(len(cache.codes), 1), np.float32)
        for value, code in cache.codes.items():
            cache.targets[code] = estimator._targets(np.array([value]), 1, reset=False)[0]

        def chunks(parts):
            for ids, floats, targets, weights in cache.read(parts):
                n = len(ids if ids is not None else floats)
                if targets is None:
                    targets = estimator._targets(None, n, reset=False)
                yield (ids, floats, *weights_of(targets, weights))
    else:
        def chunks(parts):
            for _, origin, chunk in stream.read(parts, skip_empty=True):
                yield convert(chunk, origin)

    estimator._stream_rows_held = 0
    with _seeded(None if seed is None else seed + estimator._n_fit_calls, build=reset):
        if reset:
            estimator._build_models(n_train=n_train * estimator.epochs)
            if sample:
                _, ids, floats, labels, weights = counts.sample[0]
                n = len(counts.sample[0][0])
            else:  # the hook's frequencies are replaced by every row's below
                (features, labels, weights), floats = counts.first, None
                ids, _ = to_arrays(estimator, features, training=True)
                n = len(features)
            targets, w = targets_and_weights(labels, weights, n)
            estimator._set_data_statistics(ids, targets, w)
            estimator._set_id_counts(counts.ids)
            counts.sample = []
            del ids, floats, labels, weights, targets, w
        else:
            estimator._follow_strategy(n_train=n_train * epochs)
        estimator._n_fit_calls += 1
        fit_seed = estimator._fit_seed()
        full = bool(getattr(estimator.model_, "jit_compile", False))
        weighted = full or weight_column is not None or bool(getattr(
            estimator, "class_weight", None))
        epochs_seen = itertools.count()
        shuffle = stream.shuffle_buffer > 0
        batch = estimator.batch_size

        order = dict(describe=repr(stream), buffer_rows=stream.shuffle_buffer,
                     reorderable=stream.reorderable or cache is not None)

        def train_epoch():
            return _shuffled_batches(
                estimator, chunks, train_parts, n_train, shuffle=shuffle, full=full,
                seed=fit_seed, epoch=next(epochs_seen), **order,
            )

        errors: list[Exception] = []  # raised inside tf.data, re-raised as they are
        data = _dataset(estimator, train_epoch, -(-n_train // batch), weighted=weighted,
                        errors=errors)
        callbacks = [keras.callbacks.TerminateOnNaN()]
        validation = None
        if val_parts:
            n_val = sum(counts.rows[p] for p in val_parts)

            def val_epoch():
                return _shuffled_batches(
                    estimator, chunks, val_parts, n_val, shuffle=False, full=False,
                    seed=None, epoch=0, **order,
                )

            validation = _dataset(estimator, val_epoch, -(-n_val // batch),
                                  weighted=weighted, errors=errors)
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=estimator.n_iter_no_change,
                restore_best_weights=True,
            ))
        start = time.perf_counter()
        try:
            history = estimator.model_.fit(
                data, epochs=epochs, verbose=int(estimator.verbose), shuffle=False,
                validation_data=validation, callbacks=callbacks,
            )
        except tf.errors.OpError:
            if errors:
                raise errors[-1] from None
            raise
    estimator._stream_seconds["epochs"] = time.perf_counter() - start
    estimator._record_history(history, reset=reset)
    features, labels, weights = counts.first
    targets, w = targets_and_weights(labels, weights, len(features))
    estimator._after_fit(features, reset=reset, targets=targets, weights=w)
    estimator._stream_label, estimator._stream_weight = label, weight_column
    if reset:
        estimator._track_graph()
    return estimator


def stream_outputs(estimator, stream: DataStream, function, empty: np.ndarray) -> Iterator:
    """``function(ids, floats)`` of every chunk of ``stream``, lazily, in order (``empty``
    for a chunk of no rows), at most ``prediction_chunk_size`` rows per call."""
    check_is_fitted(estimator, "model_")
    stream._check()
    label = stream.label or estimator.__dict__.get("_stream_label")
    weight = stream.weight or estimator.__dict__.get("_stream_weight")

    def generate():
        progress = RowProgress(stream.n_rows) if stream.progress else None
        step = estimator.prediction_chunk_size
        for _, origin, chunk in stream.read():
            features, _, _ = split_label(
                chunk, label, weight if weight in chunk.columns else None
            )
            if len(features) == 0:  # kept, so that outputs stay aligned with chunks
                yield empty
                continue
            outputs = []
            for start in range(0, len(features), step):
                rows = features if len(features) <= step else features.iloc[start:start + step]
                try:
                    ids, floats = to_arrays(estimator, as_frame(rows))
                except (ValueError, TypeError) as error:
                    raise annotate(origin, error) from error
                outputs.append(function(ids, floats))
            yield outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
            if progress is not None:
                progress.add(len(features))
        if progress is not None:
            progress.close()

    return generate()
