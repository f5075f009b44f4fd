"""Plots of attention weights (needs matplotlib: ``pip install sklattn[plot]``).

Every plot states its colour scale on the colour bar, and writes the text in each
cell in black or white, whichever contrasts more with the cell's colour.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

_ATTENTION_SCALES = ("raw", "row")

_NORMALISED_LABEL = "attention weight (each row sums to 1)"
_RAW_LABEL = "raw attention weight (signed, 0 = no contribution)"
_ROW_LABEL = "share of the row's total |weight| (signed, |shares| sum to 1)"
_PADDING_NOTE = "hatched = no behaviour"


def _pyplot():
    try:
        import matplotlib.pyplot as plt  # picks a file-only backend when there is no display
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Plotting needs matplotlib: pip install 'sklattn[plot]' (or matplotlib)."
        ) from exc
    return plt


def _text_color(rgba) -> str:
    """Black or white, whichever contrasts more with the background colour ``rgba``.

    From the colour's relative luminance (WCAG 2): black on backgrounds brighter
    than 0.179, white on darker ones (where the two contrast ratios are equal).
    """
    channels = np.asarray(rgba, dtype=float)[:3]
    linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
    luminance = float(linear @ np.array([0.2126, 0.7152, 0.0722]))
    return "black" if luminance > 0.179 else "white"


def _annotate(ax, image, grid: np.ndarray, text: np.ndarray, fontsize: float) -> None:
    """Write ``text[i, j]`` in each cell, coloured to contrast with the cell."""
    colors = image.cmap(image.norm(grid))
    for i, j in zip(*np.nonzero(text != ""), strict=True):
        ax.text(j, i, text[i, j], ha="center", va="center", fontsize=fontsize,
                color=_text_color(colors[i, j]))


def _hatch_empty_cells(ax) -> None:
    """Masked cells are transparent: show the axes' background as a light hatching."""
    ax.set_facecolor("white")
    ax.patch.set_hatch("///")
    ax.patch.set_edgecolor("0.8")


def plot_attention_weights(
    weights: pd.DataFrame,
    *,
    scale: str = "raw",
    row_labels: Mapping | None = None,
    sequence: str | None = None,
    max_rows: int = 8,
    ax=None,
):
    """Heat map of per-behaviour attention weights, one line per scored row.

    Each cell is a past behaviour (oldest on the left) and holds its item's
    label; its colour is the behaviour's attention weight on the scale chosen
    by ``scale``, which the colour bar's label states. Positions without a
    behaviour (padding) are hatched.

    Parameters
    ----------
    weights : pandas.DataFrame
        Output of :meth:`DINClassifier.attention_weights` or
        :meth:`DIENClassifier.attention_weights` (columns ``row``,
        ``sequence``, ``position``, ``item``, ``weight``). An ``item_label``
        column, if present, is written in each cell instead of ``item``.
    scale : {"raw", "row"}, default="raw"
        What the colours show.

        - ``"raw"``: the weights as the model computed them. When every drawn
          row's weights are non-negative and sum to 1 (DIEN, or DIN with
          ``normalize_attention=True``), a sequential map from 0 labelled
          "attention weight (each row sums to 1)". Otherwise (DIN's default,
          unnormalised activation-unit outputs, which can be negative) a
          diverging map centred at 0, symmetric around it, labelled "raw
          attention weight (signed, 0 = no contribution)": ``v_U = sum_t w_t
          h_t``, so a weight of 0 leaves the behaviour out of the pooled
          vector, and the larger ``|w_t|``, the more it enters (with its sign).
          Rows stay comparable: DIN keeps the weights unnormalised on purpose,
          so that a row's total carries the intensity of the interest.
        - ``"row"``: each weight divided by its row's total absolute weight,
          ``w_t / sum_s |w_s|``: the signed share of the row's pooling that the
          behaviour has (the ``|shares|`` of a row sum to 1). It compares how
          each row spreads its attention and hides the intensity. Weights that
          already sum to 1 per row are drawn as with ``"raw"``.

        A softmax of DIN's raw weights is deliberately not offered: the model
        does not compute it (with ``normalize_attention=False``), and it would
        change the ratios between behaviours and turn negative weights into
        positive shares.
    row_labels : mapping, default=None
        Text for each ``row`` value on the vertical axis (e.g. the candidate).
    sequence : str, default=None
        Which sequence to draw; defaults to the first one.
    max_rows : int, default=8
        Draw at most this many rows (the first ones of ``weights``).
    ax : matplotlib Axes, default=None
        Where to draw; a new figure is made when None.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on; ``ax.images[0].colorbar`` is the colour bar.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklattn.plotting import plot_attention_weights
    >>> w = pd.DataFrame({"row": [0, 0], "sequence": "h", "position": [1, 2],
    ...                   "item": [5, 7], "weight": [-0.2, 1.3]})
    >>> ax = plot_attention_weights(w)
    >>> ax.images[0].colorbar.ax.get_ylabel()
    'raw attention weight (signed, 0 = no contribution)'
    >>> ax = plot_attention_weights(w.assign(weight=[0.25, 0.75]))
    >>> ax.images[0].colorbar.ax.get_ylabel()
    'attention weight (each row sums to 1)'
    """
    if scale not in _ATTENTION_SCALES:
        raise ValueError(f"scale must be one of {_ATTENTION_SCALES}; got {scale!r}.")
    missing = {"row", "sequence", "position", "item", "weight"} - set(weights.columns)
    if "item_label" in weights:
        missing.discard("item")
    if missing:
        raise ValueError(
            "weights needs columns row, sequence, position, item and weight (the output "
            f"of attention_weights); missing {sorted(missing)}."
        )
    if weights.empty:
        raise ValueError("No attention weights to plot (every history is empty).")
    if sequence is None:
        sequence = weights["sequence"].iloc[0]
    elif sequence not in set(weights["sequence"]):
        raise ValueError(
            f"sequence={sequence!r} is not in weights; its sequences are "
            f"{sorted(set(weights['sequence']))}."
        )
    plt = _pyplot()
    from matplotlib.colors import Normalize

    w = weights[weights["sequence"] == sequence]
    rows = list(dict.fromkeys(w["row"]))[:max_rows]
    w = w[w["row"].isin(rows)]
    values = w["weight"].to_numpy(dtype=float)
    totals = w.groupby("row", sort=False)["weight"]
    normalised = bool((values >= -1e-6).all()) and np.allclose(totals.sum(), 1.0, atol=1e-3)
    if scale == "row" and not normalised:
        total = w["row"].map(totals.apply(lambda s: s.abs().sum())).to_numpy(dtype=float)
        values = np.divide(values, total, out=np.zeros_like(values), where=total > 0)

    width = int(w["position"].max())
    grid = np.full((len(rows), width), np.nan)
    text = np.full((len(rows), width), "", dtype=object)
    index = {r: i for i, r in enumerate(rows)}
    label_col = "item_label" if "item_label" in w else "item"
    for r, pos, label, value in zip(w["row"], w["position"], w[label_col], values, strict=True):
        grid[index[r], pos - 1] = value
        text[index[r], pos - 1] = str(label)[:10]

    if normalised:
        cmap, label = "Reds", _NORMALISED_LABEL
        norm = Normalize(0.0, max(float(np.nanmax(grid)), 1e-12))
    else:
        limit = max(float(np.nanmax(np.abs(grid))), 1e-12)
        cmap, norm = "RdBu_r", Normalize(-limit, limit)
        label = _RAW_LABEL if scale == "raw" else _ROW_LABEL
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 0.9 * width), 0.7 * len(rows) + 1.5))
    image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=cmap, norm=norm)
    _hatch_empty_cells(ax)
    _annotate(ax, image, grid, text, fontsize=7)
    ax.set_xticks(range(width), [str(p) for p in range(1, width + 1)])
    ax.set_xlabel(f"behaviour position (1 = oldest, right = most recent; {_PADDING_NOTE})")
    names = [str(row_labels.get(r, r)) if row_labels else str(r) for r in rows]
    ax.set_yticks(range(len(rows)), names)
    ax.set_title(f"Attention weights over {sequence}")
    ax.figure.colorbar(image, ax=ax, label=label)
    return ax


def _relative_text(value: float) -> str:
    return f"{value:.1f}×" if value < 9.95 else f"{value:.0f}×"


def plot_interaction_importances(
    importances: pd.DataFrame, *, annotate: bool = True, cmap: str = "RdBu_r", ax=None
):
    """Heat map of field-pair importances, relative to uniform attention.

    A symmetric field x field grid. With ``F`` fields there are
    ``P = F (F - 1) / 2`` pairs, and uniform attention would give each pair
    ``1 / P``; each cell is annotated with its weight times ``P``: 1.0× is an
    average pair, 2.3× a pair that gets 2.3 times its uniform share, 0.5× half
    of it. The colour bar uses the same unit, with 1.0× at the centre of the
    colour map (white with the default map).

    Parameters
    ----------
    importances : pandas.DataFrame
        Output of :meth:`AFMClassifier.interaction_importances` (columns
        ``field_a``, ``field_b``, ``weight``; the weights of all pairs sum to 1).
    annotate : bool, default=True
        Write each pair's weight relative to uniform in its cell (up to 20
        fields). The text is black or white, whichever contrasts more with the
        cell.
    cmap : str, default="RdBu_r"
        Matplotlib colour map; its centre marks uniform attention (1.0×), so a
        diverging map shows pairs above and below average in two hues.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure is made when None.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on. Fields are ordered by their total weight (the sum over
        the pairs they are in), largest first; the diagonal is hatched. The image
        holds the weights themselves (``ax.images[0].get_array()``); its colour
        bar (``ax.images[0].colorbar``) is labelled in multiples of uniform.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklattn.plotting import plot_interaction_importances
    >>> imp = pd.DataFrame({"field_a": ["user", "user", "item"],
    ...                     "field_b": ["item", "genre", "genre"],
    ...                     "weight": [0.6, 0.3, 0.1]})
    >>> ax = plot_interaction_importances(imp)
    >>> sorted({t.get_text() for t in ax.texts})
    ['0.3×', '0.9×', '1.8×']
    """
    missing = {"field_a", "field_b", "weight"} - set(importances.columns)
    if missing:
        raise ValueError(
            f"importances needs columns field_a, field_b and weight; missing {sorted(missing)}."
        )
    if importances.empty:
        raise ValueError("No interaction importances to plot.")
    plt = _pyplot()
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.ticker import MaxNLocator

    totals = pd.concat([
        importances.groupby("field_a")["weight"].sum(),
        importances.groupby("field_b")["weight"].sum(),
    ]).groupby(level=0).sum().sort_values(ascending=False, kind="stable")
    fields = list(totals.index)
    n_pairs = max(len(fields) * (len(fields) - 1) // 2, 1)
    index = {f: i for i, f in enumerate(fields)}
    grid = np.full((len(fields), len(fields)), np.nan)
    for a, b, w in zip(importances["field_a"], importances["field_b"], importances["weight"],
                       strict=True):
        grid[index[a], index[b]] = grid[index[b], index[a]] = w
    relative = grid * n_pairs
    top = max(float(np.nanmax(relative)), 2.0)
    norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0 / n_pairs, vmax=top / n_pairs)
    if ax is None:
        size = max(4.0, 0.7 * len(fields) + 2)
        _, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm)
    _hatch_empty_cells(ax)
    if annotate and len(fields) <= 20:
        text = np.full(grid.shape, "", dtype=object)
        finite = np.isfinite(relative)
        text[finite] = [_relative_text(v) for v in relative[finite]]
        _annotate(ax, image, grid, text, fontsize=7 if len(fields) <= 12 else 6)
    ax.set_xticks(range(len(fields)), [str(f) for f in fields], rotation=45, ha="right")
    ax.set_yticks(range(len(fields)), [str(f) for f in fields])
    ax.set_title("Attention on each field pair, relative to uniform")
    bar = ax.figure.colorbar(
        image, ax=ax, fraction=0.046, pad=0.04,
        label=f"weight relative to uniform: weight × {n_pairs} pairs (1.0× = an average pair)",
    )
    # the two halves of the bar have the same length: 0-1x below, 1x-top above
    above = MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]).tick_values(1.0, top)
    ticks = [0.0, 0.5, 1.0] + [t for t in above if 1.0 < t <= top + 1e-9]
    bar.set_ticks([t / n_pairs for t in ticks], labels=[f"{t:g}×" for t in ticks])
    return ax
