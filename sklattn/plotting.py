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


def plot_interaction_importances(
    importances: pd.DataFrame, *, annotate: bool = True, cmap: str = "viridis", ax=None
):
    """Heat map of field-pair importances (a symmetric field x field grid).

    Parameters
    ----------
    importances : pandas.DataFrame
        Output of :meth:`AFMClassifier.interaction_importances` (columns
        ``field_a``, ``field_b``, ``weight``).
    annotate : bool, default=True
        Write each weight in its cell.
    cmap : str, default="viridis"
        Matplotlib colour map.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure is made when None.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on. Fields are ordered by their total weight (the sum over
        the pairs they are in), largest first; the diagonal is blank.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklattn.plotting import plot_interaction_importances
    >>> imp = pd.DataFrame({"field_a": ["user", "user", "item"],
    ...                     "field_b": ["item", "genre", "genre"],
    ...                     "weight": [0.6, 0.3, 0.1]})
    >>> ax = plot_interaction_importances(imp)
    """
    plt = _pyplot()
    missing = {"field_a", "field_b", "weight"} - set(importances.columns)
    if missing:
        raise ValueError(
            f"importances needs columns field_a, field_b and weight; missing {sorted(missing)}."
        )
    if importances.empty:
        raise ValueError("No interaction importances to plot.")
    totals = pd.concat([
        importances.groupby("field_a")["weight"].sum(),
        importances.groupby("field_b")["weight"].sum(),
    ]).groupby(level=0).sum().sort_values(ascending=False, kind="stable")
    fields = list(totals.index)
    index = {f: i for i, f in enumerate(fields)}
    grid = np.full((len(fields), len(fields)), np.nan)
    for a, b, w in zip(importances["field_a"], importances["field_b"], importances["weight"],
                       strict=True):
        grid[index[a], index[b]] = grid[index[b], index[a]] = w
    if ax is None:
        size = max(4.0, 0.7 * len(fields) + 2)
        _, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap)
    if annotate and len(fields) <= 20:
        middle = np.nanmin(grid) + 0.6 * (np.nanmax(grid) - np.nanmin(grid))
        for i in range(len(fields)):
            for j in range(len(fields)):
                if np.isfinite(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center",
                            fontsize=7, color="k" if grid[i, j] > middle else "w")
    ax.set_xticks(range(len(fields)), [str(f) for f in fields], rotation=45, ha="right")
    ax.set_yticks(range(len(fields)), [str(f) for f in fields])
    ax.set_title("Mean attention weight of each field pair")
    ax.figure.colorbar(image, ax=ax, label="weight")
    return ax
