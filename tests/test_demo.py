import pandas as pd
import pytest

from sklattn import demo


def test_demo_prints_table_and_saves_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "attention.png"
    results = demo.main(n_samples=1500, epochs=1, output=out)
    printed = capsys.readouterr().out
    assert "DIN (attention)" in printed and "optimal" in printed
    assert set(results) == {
        "DIN (attention)", "Base Model (sum pooling)", "optimal (true probabilities)",
    }
    assert all(0.0 <= v <= 1.0 for v in results.values())
    assert out.stat().st_size > 10_000


def test_plot_attention_weights_validates_input():
    pytest.importorskip("matplotlib")
    from sklattn.plotting import plot_attention_weights

    w = pd.DataFrame({"row": [3, 3, 4], "sequence": "h", "position": [1, 2, 2],
                      "item": [5, 7, 9], "weight": [0.2, 1.3, -0.5]})
    ax = plot_attention_weights(w, row_labels={3: "first"})
    assert [t.get_text() for t in ax.get_yticklabels()] == ["first", "4"]
    with pytest.raises(ValueError, match="No attention"):
        plot_attention_weights(w.iloc[:0])
