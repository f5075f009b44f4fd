"""Fits run in a fresh process by test_distribute.py, which prints one JSON line.

``python distributed_fit.py mirrored``: the process splits its CPU into two logical
devices (possible only before TensorFlow's runtime starts, hence the fresh process) and
fits DIN on one device and under ``distribute="mirrored"`` on both.

``python distributed_fit.py worker``: one of the workers of the cluster that
``TF_CONFIG`` describes (its index is there); each creates its
``MultiWorkerMirroredStrategy`` first, as TensorFlow requires, and fits DIN (ReLU)
under it.
"""

import json
import sys

import tensorflow as tf

MODEL = dict(embedding_dim=4, hidden_units=(16,), attention_units=(8,), activation="relu",
             epochs=4, batch_size=128, learning_rate=1e-2, random_state=0)


def data():
    from sklattn import SequenceEncoder
    from sklattn.datasets import make_interest_sequences

    X, y = make_interest_sequences(6000, maxlen=8, random_state=0)
    encoder = SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"})
    train = encoder.fit_transform(X.iloc[:4000])
    return train, y[:4000], encoder.transform(X.iloc[4000:]), y[4000:]


def mirrored() -> dict:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import pickle

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from sklattn import DIENClassifier, DINClassifier

    X, y, X_test, y_test = data()
    out = {}
    for name, distribute in (("single", None), ("mirrored", "mirrored")):
        model = DINClassifier(distribute=distribute, **MODEL).fit(X, y)
        proba = model.predict_proba(X_test)[:, 1]
        out[name] = roc_auc_score(y_test, proba)
        if distribute:
            out["replicas"] = model.model_.distribute_strategy.num_replicas_in_sync
            again = pickle.loads(pickle.dumps(model))
            out["pickle_max_diff"] = float(
                np.abs(again.predict_proba(X_test)[:, 1] - proba).max())
            try:
                DINClassifier(distribute=distribute, jit_compile=True, **MODEL).fit(X, y)
            except ValueError as error:
                out["jit_error"] = str(error)

    # Dice: each replica normalises by its own half batch and keeps its own moving
    # averages (Keras 3.15 has no on-read variables); prediction reads the first's.
    dice = DINClassifier(distribute="mirrored", **{**MODEL, "activation": "dice"}).fit(X, y)
    out["dice"] = roc_auc_score(y_test, dice.predict_proba(X_test)[:, 1])
    # DIEN (GRUs, auxiliary loss) and a stream train under the strategy too.
    dien = DIENClassifier(distribute="mirrored", embedding_dim=4, hidden_units=(16,),
                          epochs=2, random_state=0).fit(X, y)
    out["dien_finite"] = bool(np.isfinite(dien.predict_proba(X_test)).all())
    out["dien_epochs"] = dien.n_iter_
    frames = [X.iloc[:2000].assign(label=y[:2000]), X.iloc[2000:].assign(label=y[2000:])]
    streamed = DINClassifier(distribute="mirrored", **MODEL).fit(frames, y="label")
    out["stream"] = roc_auc_score(y_test, streamed.predict_proba(X_test)[:, 1])
    return out


def worker() -> dict:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    from sklearn.metrics import roc_auc_score

    from sklattn import DINClassifier

    X, y, X_test, y_test = data()
    model = DINClassifier(distribute=strategy, **MODEL).fit(X, y)
    proba = model.predict_proba(X_test)[:, 1]
    return {"replicas": strategy.num_replicas_in_sync,
            "auc": roc_auc_score(y_test, proba), "proba": proba[:20].tolist()}


if __name__ == "__main__":
    print(json.dumps(mirrored() if sys.argv[1] == "mirrored" else worker()), flush=True)
