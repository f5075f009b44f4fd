"""sklattn's demo: DIN against the sum-pooling Base Model on synthetic click logs.

Run ``python -m sklattn.demo``. The data come from
:func:`sklattn.datasets.make_interest_sequences`, whose true click
probabilities are known, so the table shows how close each model gets to the
best possible AUC. The plot shows which past behaviours DIN attends to for a
few users.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

from . import DINClassifier, SequenceEncoder, SumPoolingClassifier
from .datasets import make_interest_sequences


def main(
    n_samples: int = 30000,
    epochs: int = 5,
    output: str | Path = "din_attention.png",
    random_state: int = 0,
) -> dict[str, float]:
    """Train DIN and the Base Model, print test AUCs and save DIN's attention plot.

    Parameters
    ----------
    n_samples : int, default=30000
        Rows of synthetic data; two thirds train, one third test.
    epochs : int, default=5
        Training epochs of each model.
    output : str or Path, default="din_attention.png"
        Where the attention plot is saved (needs matplotlib); "" skips it.
    random_state : int, default=0
        Seed of the data and the models.

    Returns
    -------
    dict
        Test AUC of each model and of the true probabilities ("optimal").
    """
    X, y, p = make_interest_sequences(n_samples, return_proba=True, random_state=random_state)
    X = X.drop(columns="user")
    n_train = 2 * n_samples // 3
    X_train, X_test, y_train, y_test = X[:n_train], X[n_train:], y[:n_train], y[n_train:]
    sequences = {"hist_item": "item", "hist_cat": "cat"}
    settings = dict(epochs=epochs, learning_rate=3e-3, activation="prelu",
                    random_state=random_state)
    models = {
        "DIN (attention)": DINClassifier(**settings),
        "Base Model (sum pooling)": SumPoolingClassifier(**settings),
    }
    results = {"optimal (true probabilities)": roc_auc_score(y_test, p[n_train:])}
    rows = []
    for name, estimator in models.items():
        pipe = make_pipeline(SequenceEncoder(sequences=sequences), estimator)
        start = time.perf_counter()
        pipe.fit(X_train, y_train)
        seconds = time.perf_counter() - start
        auc = roc_auc_score(y_test, pipe.predict_proba(X_test)[:, 1])
        results[name] = auc
        rows.append((name, auc, seconds))
        if isinstance(estimator, DINClassifier):
            din = pipe
    print(f"{n_train} training rows, {len(X_test)} test rows, {epochs} epochs\n")
    print(f"{'model':<30} {'test AUC':>9} {'fit (s)':>8}")
    for name, auc, seconds in rows:
        print(f"{name:<30} {auc:>9.4f} {seconds:>8.1f}")
    print(f"{'optimal (true probabilities)':<30} {results['optimal (true probabilities)']:>9.4f}")
    if output:
        _save_attention_plot(din, X_test.head(6), Path(output))
        print(f"\nDIN's attention weights for 6 test users: {output}")
    return results


def _save_attention_plot(pipe, X, output: Path) -> None:
    """Each cell shows the category of a past behaviour; the candidate's is on the left."""
    from .plotting import plot_attention_weights

    encoder, din = pipe[0], pipe[-1]
    encoded = encoder.transform(X)
    weights = din.attention_weights(encoded)
    categories = encoded[encoder.schema_.sequences["hist_cat"][0]].to_numpy()
    rows = encoded.index.get_indexer(weights["row"])
    weights["item_label"] = encoder.decode(categories[rows, weights["position"] - 1], "cat")
    labels = {r: f"candidate in {c}" for r, c in zip(X.index, X["cat"], strict=True)}
    ax = plot_attention_weights(weights, row_labels=labels)
    ax.figure.tight_layout()
    ax.figure.savefig(output, dpi=120)


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=30000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--output", default="din_attention.png")
    parser.add_argument("--random-state", type=int, default=0)
    args = parser.parse_args()
    main(args.n_samples, args.epochs, args.output, args.random_state)


if __name__ == "__main__":
    _cli()
