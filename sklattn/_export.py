"""``sklattn.export``: a fitted Pipeline as one TensorFlow SavedModel that takes raw rows.

The SequenceEncoder's work moves into the graph: every vocabulary becomes a
``keras.layers.StringLookup`` (``""`` is padding, id 0; an unseen value id 1; the
vocabulary's ``k``-th value id ``k + 2``, as the encoder assigns them), hashed
vocabularies become the encoder's hash (pandas' SipHash-2-4 and its finaliser) written
with TensorFlow ops, histories are reversed, compacted, truncated and padded as the
encoder does, and numeric columns are scaled and their NaN filled. The model's graph
follows, then the classifier's sigmoid (in float64, as ``predict_proba``). The
artefact needs TensorFlow only: ``tf.saved_model.load(path)`` in a process without
sklattn. See ``docs/serving.md``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline

from ._backend import keras, tf
from ._schema import FIRST_ID, OOV_ID, PAD_ID
from .preprocessing import SequenceEncoder
from .preprocessing._encoder import _hash_text

__all__ = ["export", "serving_inputs"]

FORMATS = ("tf_saved_model", "onnx")
#: A signature input is named after its column: TensorFlow's rule for op names.
_INPUT_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-/]*")
#: pandas' ``hash_array`` key (``"0123456789123456"``) as SipHash's two little-endian words.
_SIPHASH_KEY = [int.from_bytes(b"01234567", "little"), int.from_bytes(b"89123456", "little")]
_METADATA = "sklattn_export.json"


# --------------------------------------------------------------------------- the steps
def _steps(model) -> tuple[SequenceEncoder | None, object]:
    """The encoder (or None) and the sklattn model of ``model``, fitted, or a clear error."""
    from .base import BaseKerasEstimator

    if isinstance(model, Pipeline):
        named = [(name, step) for name, step in model.steps if step not in (None, "passthrough")]
    else:
        named = [(type(model).__name__.lower(), model)]
    if not named:
        raise ValueError("export needs a Pipeline that ends with an sklattn model; it is empty.")
    *head, (last_name, estimator) = named
    if not isinstance(estimator, BaseKerasEstimator):
        raise ValueError(
            f"export needs an sklattn model as the last step; {last_name!r} is a "
            f"{type(estimator).__name__}."
        )
    encoder, encoder_name = None, None
    for position, (name, step) in enumerate(head):
        if position == 0 and isinstance(step, SequenceEncoder):
            encoder, encoder_name = step, name
            continue
        raise ValueError(
            f"export supports a SequenceEncoder followed by an sklattn model; step {name!r} "
            f"({type(step).__name__}) cannot be exported. Fit the model on the encoder's "
            "output alone, or export the model and run that step before the request."
        )
    for name, step in ([(encoder_name, encoder)] if encoder is not None else []) + [
        (last_name, estimator)
    ]:
        fitted = "schema_" if step is encoder else "model_"
        if not hasattr(step, fitted):
            raise NotFittedError(
                f"export needs a fitted pipeline: step {name!r} ({type(step).__name__}) is "
                "not fitted yet. Call fit first."
            )
    return encoder, estimator


def _role(estimator) -> str:
    from .base import BaseKerasClassifier
    from .models._retrieval import BaseRetriever

    serving = estimator._serving_model()
    if any(len(t.shape) != 2 for t in serving.inputs):
        raise ValueError(
            f"export supports row-wise models; {type(estimator).__name__} scores lists of "
            "rows (its inputs are one list per request)."
        )
    if isinstance(estimator, BaseKerasClassifier):
        return "classifier"
    if isinstance(estimator, BaseRetriever):
        return "retriever"
    raise ValueError(f"export does not support {type(estimator).__name__}.")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _INPUT_NAME.fullmatch(name):
        raise ValueError(
            f"Column {name!r} cannot name an input of a SavedModel signature (letters, "
            "digits and '_.-/' only, not starting with '_', '-' or '/'); rename it before "
            "fitting to export the pipeline."
        )
    return name


# ------------------------------------------------------------------- the encoder in TF
def _siphash_ids(text: tf.Tensor, buckets: int) -> tf.Tensor:
    """``FIRST_ID + pandas.util.hash_array(text) % buckets`` (padding for ``""``).

    TensorFlow's keyed SipHash-2-4 (``to_hash_bucket_strong``) only returns the hash
    modulo a bucket count: the 64-bit value comes back from two counts, ``2**62`` (its
    low 62 bits) and ``2**62 + 1`` (then ``hash = hi * 2**62 + lo`` with
    ``hi = (lo - r) mod (2**62 + 1)``, 0 to 3). pandas then mixes it (splitmix64's
    finaliser) before the encoder takes it modulo ``buckets``.
    """
    big = 2**62
    lo = tf.strings.to_hash_bucket_strong(text, big, key=_SIPHASH_KEY)
    rest = tf.strings.to_hash_bucket_strong(text, big + 1, key=_SIPHASH_KEY)
    hi = lo - rest
    hi = tf.where(hi < 0, hi + (big + 1), hi)
    u64 = tf.uint64
    h = tf.bitwise.bitwise_or(
        tf.bitwise.left_shift(tf.bitcast(hi, u64), tf.constant(62, u64)), tf.bitcast(lo, u64)
    )

    def mix(h, shift, factor=None):
        h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, tf.constant(shift, u64)))
        return h if factor is None else h * tf.constant(factor, u64)

    h = mix(mix(mix(h, 30, 0xBF58476D1CE4E5B9), 27, 0x94D049BB133111EB), 31)
    ids = tf.bitcast(h % tf.constant(buckets, u64), tf.int64) + FIRST_ID
    return tf.where(text == "", tf.constant(PAD_ID, tf.int64), ids)


class _Lookups:
    """One look-up per vocabulary: raw text to the encoder's ids (int64)."""

    def __init__(self, vocabularies: dict) -> None:
        self.spec = vocabularies
        self.layers = {}
        for vocab, spec in vocabularies.items():
            if spec.get("keys"):
                self.layers[vocab] = keras.layers.StringLookup(
                    vocabulary=np.asarray(spec["keys"], dtype=object), mask_token="",
                    num_oov_indices=1, name=f"lookup_{len(self.layers)}",
                )
                self.layers[vocab](tf.constant([""]))  # built: ExportArchive tracks built layers

    def __call__(self, vocab: str, text: tf.Tensor) -> tf.Tensor:
        spec = self.spec[vocab]
        if "hash_buckets" in spec:
            return _siphash_ids(text, spec["hash_buckets"])
        if spec["kind"] == "int":  # transform reads "-0" as the integer 0
            text = tf.where(text == "-0", tf.constant("0"), text)
        if vocab not in self.layers:  # nothing was seen at fit: every value is unseen
            return tf.where(text == "", tf.constant(PAD_ID, tf.int64),
                            tf.constant(OOV_ID, tf.int64))
        return tf.cast(self.layers[vocab](text), tf.int64)


def _last(ids: tf.Tensor, width: int) -> tf.Tensor:
    """The last ``width`` positions, left-padded with padding where fewer."""
    pad = tf.zeros([tf.shape(ids)[0], width], ids.dtype)
    return tf.concat([pad, ids], axis=1)[:, -width:]


class _RawEncoder:
    """The encoder's transform, from raw columns to the model's two matrices."""

    def __init__(self, spec: dict, *, omit: tuple[str, ...] = ()) -> None:
        self.spec = spec
        self.omit = set(omit)
        self.lookups = _Lookups(spec["vocabularies"])
        self.inputs: dict[str, tf.TensorSpec] = {}
        self.description: dict[str, dict] = {}
        for name, seq in spec["sequences"].items():
            if seq["list_valued"]:
                self._add(name, [None, None], tf.string, f"history {name!r}, one list per row "
                          "padded with \"\" to the longest list of the request")
            else:
                for col in seq["columns"]:
                    self._add(col, [None], tf.string, f"history {name!r}")
        for col in spec["categorical"]:
            if col not in self.omit:
                self._add(col, [None], tf.string, "id")
        for col in spec["numeric"]["columns"]:
            self._add(col, [None], tf.float64, "number (NaN when missing)")

    def _add(self, name: str, shape: list, dtype, meaning: str) -> None:
        self.inputs[_check_name(name)] = tf.TensorSpec(shape, dtype, name=name)
        self.description[name] = {
            "dtype": dtype.name, "shape": ["batch" if d is None and i == 0 else d
                                           for i, d in enumerate(shape)],
            "meaning": meaning,
        }

    def __call__(self, inputs: dict) -> list[tf.Tensor]:
        spec = self.spec
        batch = tf.shape(next(iter(inputs.values())))[0]
        raw = {}
        for name, seq in spec["sequences"].items():
            text = (inputs[name] if seq["list_valued"]
                    else tf.stack([inputs[c] for c in seq["columns"]], axis=1))
            ids = self.lookups(seq["vocabulary"], text)
            raw[name] = ids[:, ::-1] if spec["most_recent"] == "first" else ids
        blocks = []
        for name, seq in spec["sequences"].items():
            ids = raw[name]
            # The encoder compacts the sequences read from the same number of positions
            # together: a position is an event where any of them has a value.
            valid = ids != PAD_ID
            for other, other_ids in raw.items():
                if other == name:
                    continue
                mine, theirs = ids.shape[1], other_ids.shape[1]
                if mine is not None and theirs is not None:
                    if mine == theirs:
                        valid = valid | (other_ids != PAD_ID)
                else:  # a list-valued history: its width is the request's longest list
                    valid = tf.cond(
                        tf.equal(tf.shape(ids)[1], tf.shape(other_ids)[1]),
                        lambda v=valid, o=other_ids: v | (o != PAD_ID),
                        lambda v=valid: v,
                    )
            order = tf.argsort(tf.cast(valid, tf.int32), axis=1, stable=True)
            blocks.append(_last(tf.gather(ids, order, batch_dims=1), seq["width"]))
        for col, vocab in spec["categorical"].items():
            if col in self.omit:
                blocks.append(tf.zeros([batch, 1], tf.int64))
            else:
                blocks.append(self.lookups(vocab, inputs[col])[:, None])
        arrays = [tf.cast(tf.concat(blocks, axis=1), tf.int32)] if blocks else []
        numeric = spec["numeric"]
        if numeric["columns"]:
            x = tf.stack([inputs[c] for c in numeric["columns"]], axis=1)
            names = tf.constant(numeric["columns"])
            checks = [tf.debugging.Assert(
                ~tf.reduce_any(tf.math.is_inf(x)),
                ["Infinite values in numeric columns",
                 tf.boolean_mask(names, tf.reduce_any(tf.math.is_inf(x), axis=0))],
            )]
            nan = tf.math.is_nan(x)
            if numeric["nan"] == "error":
                checks.append(tf.debugging.Assert(
                    ~tf.reduce_any(nan),
                    ["NaN in numeric columns (numeric_nan='error')",
                     tf.boolean_mask(names, tf.reduce_any(nan, axis=0))],
                ))
            with tf.control_dependencies(checks):
                if numeric["scaled"]:
                    x = (x - numeric["mean"]) / numeric["scale"]
                x = tf.where(nan, tf.broadcast_to(numeric["fill"], tf.shape(x)), x)
            arrays.append(tf.cast(x, tf.float32))
        return arrays


class _EncodedInputs:
    """A model fitted on encoded columns: those columns, checked as ``predict`` does."""

    def __init__(self, estimator, *, omit: tuple[str, ...] = ()) -> None:
        schema = estimator.schema_
        self.omit = set(omit)
        self.int_columns = list(schema.int_columns)
        self.numeric = list(schema.numeric)
        self.limits = np.asarray(estimator._vocab_limits, dtype=np.int64)
        self.inputs = {}
        self.description = {}
        for col in self.int_columns:
            if col not in self.omit:
                self.inputs[_check_name(col)] = tf.TensorSpec([None], tf.int64, name=col)
                self.description[col] = {"dtype": "int64", "shape": ["batch"],
                                         "meaning": "encoded id"}
        for col in self.numeric:
            self.inputs[_check_name(col)] = tf.TensorSpec([None], tf.float32, name=col)
            self.description[col] = {"dtype": "float32", "shape": ["batch"],
                                     "meaning": "encoded number"}

    def __call__(self, inputs: dict) -> list[tf.Tensor]:
        batch = tf.shape(next(iter(inputs.values())))[0]
        arrays = []
        if self.int_columns:
            ids = tf.stack([inputs[c] if c not in self.omit else tf.zeros([batch], tf.int64)
                            for c in self.int_columns], axis=1)
            check = tf.debugging.Assert(tf.reduce_all(ids >= 0), ["Negative ids in the input"])
            with tf.control_dependencies([check]):
                # Ids beyond a vocabulary are unseen values, as in predict.
                ids = tf.where(ids >= self.limits, tf.constant(OOV_ID, tf.int64), ids)
            arrays.append(tf.cast(ids, tf.int32))
        if self.numeric:
            x = tf.stack([inputs[c] for c in self.numeric], axis=1)
            check = tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(x)),
                                        ["NaN or infinity in the numeric columns"])
            with tf.control_dependencies([check]):
                arrays.append(tf.identity(x))
        return arrays


# ------------------------------------------------------------------------- the export
def export(model: Pipeline | BaseEstimator, path: str | os.PathLike, *,
           format: str = "tf_saved_model", top_n: int | None = None,
           overwrite: bool = False) -> Path:
    """Export a fitted Pipeline (or model) as one artefact that serves raw rows.

    The Pipeline's ``SequenceEncoder`` moves into the graph (vocabularies as look-up
    layers, the hash of hashed vocabularies, histories compacted and padded, numeric
    scaling and the NaN policy), so that the artefact takes the raw columns under
    their names and returns what the Pipeline returns. It needs TensorFlow only.

    Parameters
    ----------
    model : Pipeline or sklattn model
        A fitted ``make_pipeline(SequenceEncoder(...), Model(...))``, or a fitted
        sklattn model alone (the artefact then takes the encoded columns). Ranking
        models (AFM, NFM, DIN, the sum-pooling base model, DIEN, BST) and retrievers
        (MIND, SASRec, BERT4Rec). PRM (list-wise) is refused.
    path : str or path-like
        The folder to write.
    format : {"tf_saved_model", "onnx"}, default="tf_saved_model"
        ``"tf_saved_model"``: a SavedModel whose signature ``serving_default`` takes one
        input per raw column. ``"onnx"``: an ONNX file ``model.onnx`` in ``path`` (needs
        ``pip install "sklattn[onnx]"``; see ``docs/serving.md`` for what converts).
    top_n : int or None, default=None
        Retrievers: the number of items of the ``top_n`` signature (``model.top_n``
        when None; capped as ``retrieve`` caps it).
    overwrite : bool, default=False
        Replace ``path`` when it exists and is not empty (else ``FileExistsError``).

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    Inputs: an id column is a string tensor (a whole number as its decimal text,
    ``"349"``; ``""`` when missing), a wide history one string tensor per column, a
    list-valued history one ``(batch, length)`` string tensor padded with ``""``, a
    numeric column a float64 tensor (NaN when missing). :func:`serving_inputs` turns a
    DataFrame into them. Outputs of a classifier: ``probability`` (of ``classes_[1]``,
    float64) and ``logit``. A retriever: ``user_vectors`` ``(batch, K, dim)`` and
    ``mask`` ``(batch, K)`` in ``serving_default``; ``items`` and ``scores`` (exact
    top-N) in ``top_n``; the catalogue in ``items/`` (``embeddings.npy``,
    ``labels.json`` and, with ``index="faiss"``, ``index.faiss``). ``path`` also holds
    ``sklattn_export.json``, which describes every input and output.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklattn import DINClassifier, SequenceEncoder, export
    >>> from sklattn.datasets import make_interest_sequences
    >>> X, y = make_interest_sequences(500, maxlen=5, random_state=0)
    >>> pipe = make_pipeline(SequenceEncoder(sequences={"hist_item": "item",
    ...                                                 "hist_cat": "cat"}),
    ...                      DINClassifier(epochs=1, random_state=0)).fit(X, y)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = export(pipe, tmp.name + "/din/1")
    >>> (folder / "saved_model.pb").exists(), sorted(p.name for p in folder.glob("*.json"))
    (True, ['encoder.json', 'sklattn_export.json'])
    >>> tmp.cleanup()
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}; got {format!r}.")
    encoder, estimator = _steps(model)
    role = _role(estimator)
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists and is not empty; pass overwrite=True "
                              "to replace it.")
    omit = (estimator.target_,) if role == "retriever" else ()
    spec, unspecified = None, None
    if encoder is not None:
        try:
            spec = encoder._serving_spec()
        except ValueError as error:
            if format == "tf_saved_model":
                raise
            # The ONNX file takes encoded matrices: the encoder stays with the caller.
            unspecified = str(error)
    features = None  # the ONNX graph takes the encoded matrices
    if format == "tf_saved_model":
        features = (_RawEncoder(spec, omit=omit) if encoder is not None
                    else _EncodedInputs(estimator, omit=omit))
    # Everything is written to a fresh folder beside ``path`` and swapped in at the end:
    # a refused or failed export leaves an existing artefact as it was.
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        signature = None
        if format == "onnx":
            signature = _write_onnx(staging, estimator, role)
        else:
            _write_saved_model(staging, estimator, role, features, top_n)
        if role == "retriever":
            _write_catalogue(staging / "items", estimator)
        if spec is not None:
            (staging / "encoder.json").write_text(
                json.dumps(spec, indent=1, default=np.ndarray.tolist))  # the numeric statistics
        _write_metadata(staging, format, estimator, role, features, encoder is not None,
                        signature, unspecified)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        staging.rename(path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return path


def _write_saved_model(path: Path, estimator, role: str, features, top_n) -> None:
    serving = estimator._serving_model()
    archive = keras.export.ExportArchive()
    archive.track(serving)
    for layer in getattr(getattr(features, "lookups", None), "layers", {}).values():
        archive.track(layer)
    endpoints = _endpoints(estimator, role, features, serving, top_n)
    for name, (fn, _) in endpoints.items():
        archive.add_endpoint(name, fn, input_signature=[features.inputs])
    catalogue = endpoints.get("top_n", (None, None))[1]
    if catalogue is not None:
        archive.add_variable_collection("catalogue", list(catalogue))
    # Custom gradients (DIEN's attention GRU) are a training matter.
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    archive.write_out(str(path), options=options, verbose=False)


def _endpoints(estimator, role: str, features, serving, top_n) -> dict:
    """Endpoint name -> (function of the inputs' dict, extra variables or None)."""

    def run(inputs):
        arrays = features(inputs)
        return serving(arrays if len(arrays) > 1 else arrays[0], training=False), arrays

    if role == "classifier":
        def classify(inputs):
            logit = tf.reshape(run(inputs)[0], [-1])
            return {"probability": tf.math.sigmoid(tf.cast(logit, tf.float64)), "logit": logit}

        return {"serving_default": (classify, None)}

    def user(inputs):
        out, arrays = run(inputs)
        if isinstance(out, (list, tuple)):  # several interests and their mask
            return {"user_vectors": out[0], "mask": tf.cast(out[1], tf.bool)}, arrays
        return {"user_vectors": out[:, None, :],
                "mask": tf.ones([tf.shape(out)[0], 1], tf.bool)}, arrays

    def vectors(inputs):
        return user(inputs)[0]

    n = estimator._n_retrieved(estimator.top_n if top_n is None else top_n)
    items = tf.Variable(np.asarray(estimator.item_embeddings_, np.float32), trainable=False,
                        name="item_embeddings")
    labels = np.asarray(estimator.item_labels_)
    labels = tf.Variable(labels.astype(str) if labels.dtype == object else labels,
                         trainable=False, name="item_labels")
    history = estimator.schema_.sequence_positions(estimator.sequence_)
    exclude_seen = bool(estimator.exclude_seen)

    def retrieve(inputs):
        out, arrays = user(inputs)
        scores = tf.einsum("bkd,nd->bkn", out["user_vectors"], items)
        scores = tf.where(out["mask"][:, :, None], scores, -np.inf)
        scores = tf.reduce_max(scores, axis=1)
        if exclude_seen:
            ids = tf.gather(arrays[0], history, axis=1)
            rows = tf.broadcast_to(tf.range(tf.shape(ids)[0])[:, None], tf.shape(ids))
            seen = tf.stack([rows, ids - FIRST_ID], axis=-1)[ids >= FIRST_ID]
            scores = tf.tensor_scatter_nd_update(
                scores, seen, tf.fill([tf.shape(seen)[0]], tf.constant(-np.inf, scores.dtype))
            )
        best, positions = tf.math.top_k(scores, k=n)
        return {"items": tf.gather(labels, positions), "scores": best}

    return {"serving_default": (vectors, None), "top_n": (retrieve, (items, labels))}


def _write_catalogue(folder: Path, estimator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "embeddings.npy", np.asarray(estimator.item_embeddings_, np.float32))
    labels = np.asarray(estimator.item_labels_)
    (folder / "labels.json").write_text(json.dumps(labels.tolist()))
    if estimator.index == "faiss":
        import faiss

        faiss.write_index(estimator._get_index().index, str(folder / "index.faiss"))


def _write_metadata(path: Path, format: str, estimator, role: str, features, raw: bool,
                    onnx: dict | None, unspecified: str | None = None) -> None:
    from . import __version__

    outputs = (
        {"probability": "float64 (batch,): probability of classes[1]",
         "logit": "float32 (batch,): the model's logit"}
        if role == "classifier" else
        {"user_vectors": "float32 (batch, K, dim)", "mask": "bool (batch, K): valid vectors"}
    )
    meta = {
        "sklattn_version": __version__,
        "format": format,
        "model": type(estimator).__name__,
        "inputs": "raw columns" if raw else "encoded columns",
    }
    if features is not None:
        meta["signatures"] = {"serving_default": {"inputs": features.description,
                                                  "outputs": outputs}}
    if onnx is not None:
        meta["inputs"] = ("encoded matrices (encoder.json describes the encoding)"
                          if raw and unspecified is None else "encoded matrices")
        if unspecified is not None:
            meta["encoder"] = f"not described (no encoder.json): {unspecified}"
        meta["signatures"] = {"model.onnx": onnx}
    if role == "classifier":
        meta["classes"] = np.asarray(estimator.classes_).tolist()
    elif onnx is None:
        meta["signatures"]["top_n"] = {
            "inputs": "as serving_default",
            "outputs": {"items": "(batch, n) item labels, best first",
                        "scores": "float32 (batch, n)"},
        }
    if role == "retriever":
        meta["catalogue"] = {"embeddings": "items/embeddings.npy", "labels": "items/labels.json",
                             "index": "items/index.faiss" if estimator.index == "faiss" else None}
    (path / _METADATA).write_text(json.dumps(meta, indent=2, default=str))


def _write_onnx(path: Path, estimator, role: str) -> dict:
    """The model's graph on the encoded matrices as ``path/model.onnx``, through Keras'
    exporter; its inputs and outputs (names -> meaning).

    The encoder's look-ups stay out: tf2onnx cannot convert TensorFlow 2's lookup tables
    (``LookupTableFindV2``: "Could not determine table shared name"), so an ONNX client
    encodes with ``encoder.json`` (or the SavedModel). The file is loaded once by
    onnxruntime before it is kept: an op that did not convert (BERT4Rec's exact GELU,
    ``Erfc``) fails there and the export raises, rather than leaving a file no runtime
    loads.
    """
    try:
        import onnx
        import onnxruntime
        import tf2onnx  # noqa: F401 - what Keras' exporter converts with
    except ImportError as error:
        raise ImportError(
            f'format="onnx" needs tf2onnx, onnx and onnxruntime ({error.name} is missing): '
            'pip install "sklattn[onnx]".'
        ) from None
    serving = estimator._serving_model()
    if role == "classifier":
        logit = keras.ops.reshape(serving.outputs[0], (-1,))
        outputs = {"probability": "float32 (batch,): probability of classes[1]",
                   "logit": "float32 (batch,): the model's logit"}
        graph = keras.Model(serving.inputs, [keras.ops.sigmoid(logit), logit])
    elif len(serving.outputs) == 2:
        outputs = {"user_vectors": "float32 (batch, K, dim)",
                   "mask": "bool (batch, K): valid vectors"}
        graph = keras.Model(serving.inputs, list(serving.outputs))
    else:
        outputs = {"user_vector": "float32 (batch, dim)"}
        graph = serving
    path.mkdir(parents=True, exist_ok=True)
    file = path / "model.onnx"
    specs = [tf.TensorSpec(t.shape, t.dtype, name=name)
             for t, name in zip(serving.inputs, ("ids", "numeric") if len(serving.inputs) > 1
                                else [serving.inputs[0].name], strict=True)]
    with warnings.catch_warnings():
        # Keras' numpy-2 patch of tf2onnx probes np.object, which warns.
        warnings.simplefilter("ignore", FutureWarning)
        graph.export(str(file), format="onnx", verbose=False,
                     input_signature=[specs] if len(specs) > 1 else specs)
    model = onnx.load(str(file))
    for output, name in zip(model.graph.output, outputs, strict=True):
        for node in model.graph.node:  # the tensor's producer and its readers
            node.output[:] = [name if o == output.name else o for o in node.output]
            node.input[:] = [name if i == output.name else i for i in node.input]
        output.name = name
    onnx.save(model, str(file))
    try:
        onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    except Exception as error:
        file.unlink()
        missing = sorted(set(re.findall(r"No Op registered for (\w+)", str(error))))
        reason = (f"no ONNX operator for {', '.join(missing)}" if missing
                  else str(error).strip()[:300])
        raise ValueError(
            f"{type(estimator).__name__}'s graph does not convert to ONNX: onnxruntime "
            f"refuses the converted file ({reason}). Export it as \"tf_saved_model\" "
            "instead."
        ) from None
    schema = estimator.schema_
    inputs = {}
    if schema.int_columns:
        inputs["ids"] = {"dtype": "int32", "shape": ["batch", len(schema.int_columns)],
                         "columns": list(schema.int_columns)}
    if schema.numeric:
        inputs["numeric"] = {"dtype": "float32", "shape": ["batch", len(schema.numeric)],
                             "columns": list(schema.numeric)}
    return {"inputs": inputs, "outputs": outputs}


# ------------------------------------------------------------------------ the request
def _id_text(values: pd.Series, kind: str | None) -> np.ndarray:
    """An id column as the text the exported graph reads (see :func:`_one_id`)."""
    dtype = values.dtype
    if pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return values.astype("string").fillna("").to_numpy(dtype=str)
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return values.fillna("").to_numpy(dtype=str)  # pandas' string dtypes: text already
    return np.array([_one_id(v, kind) for v in values.tolist()], dtype=object).astype(str)


def _one_id(value, kind: str | None) -> str:
    """``""`` when missing; a boolean as ``"1"`` / ``"0"`` for an integer vocabulary
    (``transform`` matches ``True`` with 1); otherwise the encoder's text of a value
    (whole numbers as their decimal text, ``349.0`` -> ``"349"``, as ``transform``
    matches them in either kind of vocabulary)."""
    if isinstance(value, str):
        return value
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value)) if kind == "int" else str(value)
    return _hash_text(value)


def serving_inputs(model: Pipeline | BaseEstimator, X: pd.DataFrame, *,
                   format: str = "tf_saved_model") -> dict[str, np.ndarray]:
    """The inputs of an exported ``model`` for the rows of ``X``, as numpy arrays.

    Parameters
    ----------
    model : Pipeline or sklattn model
        The fitted model that was (or will be) exported.
    X : pandas.DataFrame
        Raw rows, as the Pipeline takes them (encoded rows for a model alone). Columns
        the exported model does not take are ignored; a missing one raises a
        ``ValueError`` that names it.
    format : {"tf_saved_model", "onnx"}, default="tf_saved_model"
        The format of the export.

    Returns
    -------
    dict of str to numpy.ndarray
        ``"tf_saved_model"``: one array per input of the ``serving_default`` signature:
        text for ids (``""`` when missing), ``(n, length)`` text for a list-valued
        history (padded with ``""``), float64 for numbers (NaN when missing).
        ``tf.constant`` of each gives the signature's tensors; ``.tolist()`` the columns
        of a TensorFlow Serving REST request. ``"onnx"``: the encoded matrices ``ids``
        (int32) and ``numeric`` (float32), the rows encoded by the Pipeline's encoder.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklattn import DINClassifier, SequenceEncoder, serving_inputs
    >>> from sklattn.datasets import make_interest_sequences
    >>> X, y = make_interest_sequences(200, maxlen=3, random_state=0)
    >>> pipe = make_pipeline(SequenceEncoder(sequences={"hist_item": "item"}),
    ...                      DINClassifier(epochs=1, random_state=0)).fit(X, y)
    >>> inputs = serving_inputs(pipe, X.head(1))
    >>> inputs["hist_item_3"], inputs["user_activity"].dtype
    (array(['218'], dtype='<U3'), dtype('float64'))
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}; got {format!r}.")
    encoder, estimator = _steps(model)
    role = _role(estimator)
    omit = (estimator.target_,) if role == "retriever" else ()
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"serving_inputs needs a pandas DataFrame; got {type(X).__name__}.")
    if format == "onnx":
        from ._data import to_arrays

        ids, floats = to_arrays(estimator, encoder.transform(X) if encoder is not None else X)
        return {k: v for k, v in (("ids", ids), ("numeric", floats)) if v is not None}
    out: dict[str, np.ndarray] = {}
    if encoder is None:
        schema = estimator.schema_
        for col in schema.int_columns:
            if col not in omit:
                out[col] = X[col].to_numpy(dtype=np.int64)
        for col in schema.numeric:
            out[col] = X[col].to_numpy(dtype=np.float32)
        return out
    spec = encoder._serving_spec(keys=False)  # the kinds: no vocabulary walked per request
    kinds = {v: d.get("kind") for v, d in spec["vocabularies"].items()}
    needed = [c for seq in spec["sequences"].values()
              for c in (seq["columns"] if not seq["list_valued"] else [])]
    needed += [n for n, seq in spec["sequences"].items() if seq["list_valued"]]
    needed += [c for c in spec["categorical"] if c not in omit]
    needed += spec["numeric"]["columns"]
    missing = [c for c in needed if c not in X.columns]
    if missing:
        raise ValueError(f"X is missing columns the exported model takes: {missing}.")
    for name, seq in spec["sequences"].items():
        kind = kinds[seq["vocabulary"]]
        if seq["list_valued"]:
            rows = []
            for v in X[name].tolist():
                if isinstance(v, (str, bytes)):
                    raise TypeError(f"Column {name!r} holds lists; got the text {v!r}.")
                rows.append([] if v is None or (pd.api.types.is_scalar(v) and pd.isna(v))
                            else list(v))
            width = max((len(r) for r in rows), default=0)
            out[name] = np.array(
                [[_one_id(v, kind) for v in r] + [""] * (width - len(r)) for r in rows],
                dtype=str,
            ).reshape(len(rows), width)
        else:
            for col in seq["columns"]:
                out[col] = _id_text(X[col], kind)
    for col, vocab in spec["categorical"].items():
        if col not in omit:
            out[col] = _id_text(X[col], kinds[vocab])
    for col in spec["numeric"]["columns"]:
        out[col] = X[col].to_numpy(dtype=np.float64, na_value=np.nan)
    return out
