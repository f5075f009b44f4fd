"""The plots state their colour scale, annotate in readable units, and keep text legible."""

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from sklattn.plotting import (  # noqa: E402
    _text_color,
    plot_attention_weights,
    plot_interaction_importances,
)

RAW = "raw attention weight (signed, 0 = no contribution)"
SUMS_TO_ONE = "attention weight (each row sums to 1)"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _weights(values_by_row):
    """A tidy attention frame: each row's weights at the last positions of a 6-wide grid."""
    records = [
        (row, "hist", 6 - len(values) + t + 1, 10 * row + t, value)
        for row, values in values_by_row.items()
        for t, value in enumerate(values)
    ]
    return pd.DataFrame(records, columns=["row", "sequence", "position", "item", "weight"])


def _colorbar_label(ax):
    return ax.images[0].colorbar.ax.get_ylabel()


def _cell_texts(ax):
    """{(row, column): Text} of the annotations."""
    return {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}


def test_raw_weights_are_signed_and_centred_at_zero():
    w = _weights({0: [-0.9, -0.2, -1.5], 1: [0.4, -0.1]})
    ax = plot_attention_weights(w)
    assert _colorbar_label(ax) == RAW
    norm = ax.images[0].norm
    assert norm.vmin == pytest.approx(-1.5) and norm.vmax == pytest.approx(1.5)
    assert norm(0.0) == pytest.approx(0.5)  # 0 sits at the neutral middle of the map
    grid = np.ma.filled(ax.images[0].get_array(), np.nan)
    assert grid[0, 3:].tolist() == [-0.9, -0.2, -1.5]
    assert np.isnan(grid[0, :3]).all()  # padding stays empty


@pytest.mark.parametrize("scale", ["raw", "row"])
def test_weights_that_sum_to_one_per_row_say_so(scale):
    w = _weights({0: [0.2, 0.5, 0.3], 1: [0.9, 0.1], 2: [1.0]})
    ax = plot_attention_weights(w, scale=scale)
    assert _colorbar_label(ax) == SUMS_TO_ONE
    assert ax.images[0].norm.vmin == 0.0
    grid = np.ma.filled(ax.images[0].get_array(), np.nan)
    np.testing.assert_allclose(np.nansum(grid, axis=1), 1.0)


def test_row_scale_gives_signed_shares_of_the_row():
    w = _weights({0: [-1.0, -3.0], 1: [2.0, -1.0, 1.0]})
    ax = plot_attention_weights(w, scale="row")
    assert _colorbar_label(ax) == "share of the row's total |weight| (signed, |shares| sum to 1)"
    grid = np.ma.filled(ax.images[0].get_array(), np.nan)
    np.testing.assert_allclose(grid[0, 4:], [-0.25, -0.75])
    np.testing.assert_allclose(grid[1, 3:], [0.5, -0.25, 0.25])
    np.testing.assert_allclose(np.nansum(np.abs(grid), axis=1), 1.0)
    assert ax.images[0].norm(0.0) == pytest.approx(0.5)


def test_bad_scale_or_sequence_names_the_parameter():
    w = _weights({0: [0.1, 0.2]})
    with pytest.raises(ValueError, match="scale must be one of"):
        plot_attention_weights(w, scale="softmax")
    with pytest.raises(ValueError, match="sequence='other'"):
        plot_attention_weights(w, sequence="other")
    with pytest.raises(ValueError, match="missing \\['position'\\]"):
        plot_attention_weights(w.drop(columns="position"))


def test_text_color_contrasts_with_the_background():
    assert _text_color((1.0, 1.0, 1.0, 1.0)) == "black"
    assert _text_color((1.0, 1.0, 0.6)) == "black"  # light yellow
    assert _text_color((0.0, 0.0, 0.0)) == "white"
    assert _text_color((0.02, 0.19, 0.38)) == "white"  # dark blue
    assert _text_color((0.4, 0.0, 0.05)) == "white"  # dark red


def test_attention_labels_contrast_with_dark_and_light_cells():
    w = _weights({0: [-2.0, 0.05, 2.0]})
    w["item_label"] = ["dark-blue", "white", "dark-red"]
    ax = plot_attention_weights(w)
    texts = _cell_texts(ax)
    assert texts[0, 3].get_text() == "dark-blue" and texts[0, 3].get_color() == "white"
    assert texts[0, 4].get_color() == "black"
    assert texts[0, 5].get_color() == "white"


def _uniform_pairs(fields):
    pairs = [(a, b) for i, a in enumerate(fields) for b in fields[i + 1:]]
    return pd.DataFrame({"field_a": [a for a, _ in pairs], "field_b": [b for _, b in pairs],
                         "weight": 1.0 / len(pairs)})


def test_uniform_importances_annotate_one_everywhere():
    fields = [f"f{i}" for i in range(20)]  # 190 pairs, each weight 1/190 ~ 0.005
    ax = plot_interaction_importances(_uniform_pairs(fields))
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 20 * 19 and set(texts) == {"1.0×"}
    label = _colorbar_label(ax)
    assert "relative to uniform" in label and "190 pairs" in label and "1.0×" in label
    assert "1×" in [t.get_text() for t in ax.images[0].colorbar.ax.get_yticklabels()]


def test_importances_annotate_multiples_of_uniform():
    imp = pd.DataFrame({"field_a": ["user", "user", "item"],
                        "field_b": ["item", "genre", "genre"],
                        "weight": [0.6, 0.3, 0.1]})
    ax = plot_interaction_importances(imp)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    texts = _cell_texts(ax)
    for a, b, expected in [("user", "item", "1.8×"), ("user", "genre", "0.9×"),
                           ("item", "genre", "0.3×")]:
        i, j = labels.index(a), labels.index(b)
        assert texts[i, j].get_text() == texts[j, i].get_text() == expected
    # the image keeps the weights themselves; only the display is relative
    grid = np.ma.filled(ax.images[0].get_array(), np.nan)
    assert np.nansum(grid) == pytest.approx(2.0)
    assert "Attention" in ax.get_title() and "uniform" in ax.get_title()


def test_importance_labels_contrast_with_dark_and_light_cells():
    imp = _uniform_pairs(["a", "b", "c", "d"])  # 6 pairs
    imp["weight"] = [0.70, 1 / 6, 0.0, 0.0667, 0.0333, 0.0333]
    ax = plot_interaction_importances(imp)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    texts = _cell_texts(ax)
    colors = ax.images[0].cmap(ax.images[0].norm(ax.images[0].get_array()))

    def cell(a, b):
        i, j = labels.index(a), labels.index(b)
        return texts[i, j], colors[i, j]

    text, rgba = cell("a", "b")  # 4.2x: the darkest red
    assert text.get_text() == "4.2×" and text.get_color() == "white" and rgba[0] < 0.6
    text, rgba = cell("a", "c")  # 1.0x: the neutral white middle
    assert text.get_text() == "1.0×" and text.get_color() == "black" and min(rgba[:3]) > 0.9
    text, _ = cell("a", "d")  # 0x: the darkest blue
    assert text.get_text() == "0.0×" and text.get_color() == "white"


def test_fitted_din_weights_plot_on_the_stated_scale(fitted_din, interest_data):
    from sklearn.base import clone

    X, y, _ = interest_data
    encoded = fitted_din[0].transform(X.head(5))
    w = fitted_din[-1].attention_weights(encoded)  # unnormalised (the default)
    ax = plot_attention_weights(w)
    assert _colorbar_label(ax) == RAW
    assert len(ax.texts) == (w["sequence"] == "hist_item").sum()

    normalised = clone(fitted_din).set_params(
        dinclassifier__normalize_attention=True, dinclassifier__epochs=1
    ).fit(X[:300], y[:300])
    w = normalised[-1].attention_weights(normalised[0].transform(X.head(5)))
    assert _colorbar_label(plot_attention_weights(w)) == SUMS_TO_ONE
