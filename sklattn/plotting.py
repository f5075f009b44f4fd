"""Plots of attention weights (needs matplotlib: ``pip install sklattn[plot]``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd


def _pyplot():
    try:
        import matplotlib.pyplot as plt  # picks a file-only backend when there is no display
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Plotting needs matplotlib: pip install 'sklattn[plot]' (or matplotlib)."
        ) from exc
    return plt


def plot_attention_weights(
    weights: pd.DataFrame,
    *,
    row_labels: Mapping | None = None,
    sequence: str | None = None,
    max_rows: int = 8,
    ax=None,
):
    """Heat map of per-behaviour attention weights, one line per scored row.

    Parameters
    ----------
    weights : pandas.DataFrame
        Output of :meth:`DINClassifier.attention_weights` (columns ``row``,
        ``sequence``, ``position``, ``item``, ``weight``). An ``item_label``
        column, if present, is written in each cell instead of ``item``.
    row_labels : mapping, default=None
        Text for each ``row`` value on the vertical axis (e.g. the candidate).
    sequence : str, default=None
        Which sequence to draw; defaults to the first one.
    max_rows : int, default=8
        Draw at most this many rows.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure is made when None.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklattn.plotting import plot_attention_weights
    >>> w = pd.DataFrame({"row": [0, 0], "sequence": "h", "position": [1, 2],
    ...                   "item": [5, 7], "weight": [0.2, 1.3]})
    >>> ax = plot_attention_weights(w)
    """
    plt = _pyplot()
    if weights.empty:
        raise ValueError("No attention weights to plot (every history is empty).")
    sequence = sequence or weights["sequence"].iloc[0]
    w = weights[weights["sequence"] == sequence]
    rows = list(dict.fromkeys(w["row"]))[:max_rows]
    w = w[w["row"].isin(rows)]
    width = int(w["position"].max())
    grid = np.full((len(rows), width), np.nan)
    text = np.full((len(rows), width), "", dtype=object)
    index = {r: i for i, r in enumerate(rows)}
    label_col = "item_label" if "item_label" in w else "item"
    for r, pos, label, value in zip(w["row"], w["position"], w[label_col], w["weight"],
                                    strict=True):
        grid[index[r], pos - 1] = value
        text[index[r], pos - 1] = str(label)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 0.9 * width), 0.7 * len(rows) + 1.5))
    image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis")
    for i in range(len(rows)):
        for j in range(width):
            if text[i, j]:
                ax.text(j, i, text[i, j][:10], ha="center", va="center", fontsize=7, color="w")
    ax.set_xticks(range(width), [str(p) for p in range(1, width + 1)])
    ax.set_xlabel("behaviour position (1 = oldest, right = most recent)")
    names = [str(row_labels.get(r, r)) if row_labels else str(r) for r in rows]
    ax.set_yticks(range(len(rows)), names)
    ax.set_title(f"Attention weights over {sequence}")
    ax.figure.colorbar(image, ax=ax, label="weight")
    return ax
