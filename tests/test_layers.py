import numpy as np
import pytest

from sklattn._backend import keras
from sklattn.layers import (
    MLP,
    ActivationUnit,
    Dice,
    Embedding,
    MaskedPooling,
    PositionEmbedding,
    PReLU,
    TransformerBlock,
)

ops = keras.ops
rng = np.random.default_rng(0)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def test_dice_uses_batch_statistics_in_training():
    dice = Dice()
    x = rng.normal(2.0, 3.0, size=(64, 4)).astype("float32")
    out = _np(dice(x, training=True))
    mean, var = x.mean(0), x.var(0)
    p = 1 / (1 + np.exp(-(x - mean) / np.sqrt(var + 1e-8)))
    alpha = _np(dice.alpha)
    np.testing.assert_allclose(out, p * x + (1 - p) * alpha * x, rtol=1e-4, atol=1e-5)
    # In training a row's output depends on the rest of the batch...
    other = np.concatenate([x[:1], x[1:] + 10.0])
    assert not np.allclose(_np(dice(other, training=True))[0], out[0])


def test_dice_uses_moving_averages_at_inference():
    dice = Dice(momentum=0.5)
    x = rng.normal(2.0, 3.0, size=(64, 4)).astype("float32")
    dice(x, training=True)
    np.testing.assert_allclose(_np(dice.moving_mean), 0.5 * x.mean(0), rtol=1e-4)
    np.testing.assert_allclose(_np(dice.moving_variance), 0.5 + 0.5 * x.var(0), rtol=1e-4)
    alone = _np(dice(x[:1], training=False))
    in_batch = _np(dice(np.concatenate([x[:1], x[1:] * 7]), training=False))[:1]
    np.testing.assert_allclose(alone, in_batch, rtol=1e-6)
    mean, var = _np(dice.moving_mean), _np(dice.moving_variance)
    p = 1 / (1 + np.exp(-(x[:1] - mean) / np.sqrt(var + 1e-8)))
    np.testing.assert_allclose(alone, p * x[:1], rtol=1e-4, atol=1e-6)  # alpha is 0


def test_dice_masked_statistics_ignore_padding():
    dice = Dice()
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    valid = np.ones((4, 5), bool)
    valid[:, :2] = False
    changed = x.copy()
    changed[:, :2] = 1e3
    a = _np(dice(x, training=True, valid=valid))
    b = _np(dice(changed, training=True, valid=valid))
    np.testing.assert_allclose(a[:, 2:], b[:, 2:], rtol=1e-5)


@pytest.mark.parametrize("normalize", [False, True])
def test_activation_unit_ignores_padded_behaviours(normalize):
    unit = ActivationUnit((8, 4), activation="dice", normalize=normalize)
    q = rng.normal(size=(3, 6)).astype("float32")
    k = rng.normal(size=(3, 5, 6)).astype("float32")
    valid = np.array([[0, 0, 1, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], bool)
    k2 = np.where(valid[..., None], k, rng.normal(size=k.shape) * 100).astype("float32")
    for training in (False, True):
        p1, w1 = unit(q, k, valid, training=training)
        p2, w2 = unit(q, k2, valid, training=training)
        np.testing.assert_allclose(_np(p1), _np(p2), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(_np(w1), _np(w2), rtol=1e-5, atol=1e-6)
    w = _np(w1)
    assert np.all(w[~valid] == 0)
    assert np.all(np.isfinite(w)) and np.all(_np(p1)[2] == 0)
    if normalize:
        np.testing.assert_allclose(w[:2].sum(1), 1.0, rtol=1e-5)


def test_activation_unit_pools_weighted_sum():
    unit = ActivationUnit((4,), activation="relu")
    q = rng.normal(size=(2, 3)).astype("float32")
    k = rng.normal(size=(2, 4, 3)).astype("float32")
    pooled, w = unit(q, k, np.ones((2, 4), bool))
    np.testing.assert_allclose(_np(pooled), np.einsum("bt,btd->bd", _np(w), k), rtol=1e-5)


def test_masked_pooling():
    v = rng.normal(size=(2, 3, 2)).astype("float32")
    valid = np.array([[1, 1, 0], [0, 0, 0]], bool)
    np.testing.assert_allclose(_np(MaskedPooling("sum")(v, valid))[0], v[0, :2].sum(0), rtol=1e-6)
    np.testing.assert_allclose(_np(MaskedPooling("mean")(v, valid))[0], v[0, :2].mean(0), rtol=1e-6)
    assert np.all(_np(MaskedPooling("mean")(v, valid))[1] == 0)
    with pytest.raises(ValueError, match="mode"):
        MaskedPooling("max")


def test_prelu_per_feature_any_rank():
    layer = PReLU()
    x = np.array([[[-1.0, 2.0], [3.0, -4.0]]], "float32")
    layer.build(x.shape)
    layer.alpha.assign(np.array([0.5, 0.25], "float32"))
    np.testing.assert_allclose(_np(layer(x)), [[[-0.5, 2.0], [3.0, -1.0]]])


def test_mini_batch_aware_l2_matches_the_paper():
    table = Embedding(6, 2, l2=0.1)
    table.build()
    counts = np.array([0, 1, 4, 2, 8, 1], "float32")
    table.set_frequencies(counts)
    ids = np.array([[0, 2, 2], [4, 0, 2]])
    w = _np(table.embeddings)
    expected = 0.1 * sum((w[j] ** 2).sum() / counts[j] for j in (2, 4))
    out = table(ids, training=True)
    assert _np(out).shape == (2, 3, 2)
    assert len(table.losses) == 1
    np.testing.assert_allclose(float(_np(table.losses[0])), expected, rtol=1e-5)
    table(ids, training=False)
    assert len(table.losses) == 0


@pytest.mark.parametrize(
    "layer",
    [Dice(momentum=0.9), PReLU(), MLP([4, 2], activation="dice", dropout=0.1),
     ActivationUnit((6,), activation="prelu", normalize=True), MaskedPooling("mean"),
     Embedding(10, 3, l2=0.5),
     TransformerBlock(n_heads=2, ff_units=8, activation="gelu", causal=True, norm_first=True),
     PositionEmbedding(7, 3)],
    ids=lambda layer: type(layer).__name__,
)
def test_layers_serialize(layer):
    config = keras.saving.serialize_keras_object(layer)
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


def test_activation_unit_split_kernel_equals_concatenated_features():
    unit = ActivationUnit((6, 3), activation="relu")
    q = rng.normal(size=(4, 5)).astype("float32")
    k = rng.normal(size=(4, 7, 5)).astype("float32")
    valid = np.ones((4, 7), bool)
    _, w = unit(q, k, valid)
    qq = np.repeat(q[:, None], 7, axis=1)
    features = np.concatenate([k, qq, k - qq, k * qq], -1)
    hidden = np.maximum(features @ _np(unit.first.kernel) + _np(unit.first.bias), 0)
    hidden = np.maximum(
        hidden @ _np(unit.mlp.dense_layers[0].kernel) + _np(unit.mlp.dense_layers[0].bias), 0
    )
    expected = (hidden @ _np(unit.score.kernel) + _np(unit.score.bias))[..., 0]
    np.testing.assert_allclose(_np(w), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_block_padding_is_exact(causal, norm_first):
    x = rng.normal(size=(3, 6, 8)).astype("float32")
    valid = np.ones((3, 6), bool)
    valid[0, :2] = False
    valid[1, :5] = False
    block = TransformerBlock(n_heads=2, causal=causal, norm_first=norm_first, dropout=0.0)
    out = _np(block(x, valid))
    garbage = x.copy()
    garbage[~valid] = rng.normal(size=garbage[~valid].shape) * 100
    np.testing.assert_array_equal(_np(block(garbage, valid)), out)
    assert np.all(out[~valid] == 0) and np.isfinite(out).all()
    # A row of padding only gives zeros, not NaN.
    assert np.all(_np(block(x[:1], np.zeros((1, 6), bool))) == 0)


def test_transformer_block_causal_never_looks_ahead():
    x = rng.normal(size=(2, 6, 8)).astype("float32")
    valid = np.ones((2, 6), bool)
    block = TransformerBlock(n_heads=2, causal=True, dropout=0.0)
    out, weights = block(x, valid, return_attention=True)
    later = x.copy()
    later[:, 4:] = rng.normal(size=later[:, 4:].shape)
    changed = _np(block(later, valid))
    np.testing.assert_allclose(changed[:, :4], _np(out)[:, :4], rtol=1e-5, atol=1e-6)
    assert not np.allclose(changed[:, 4:], _np(out)[:, 4:])
    w = _np(weights)
    assert np.all(np.triu(w, k=1) == 0)  # query t puts no weight on keys after t
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
    # Bidirectional: the first position does see the later ones.
    both = TransformerBlock(n_heads=2, dropout=0.0)
    assert not np.allclose(_np(both(later, valid))[:, 0], _np(both(x, valid))[:, 0])


def test_transformer_block_needs_a_width_divisible_by_heads():
    with pytest.raises(ValueError, match="multiple of n_heads=3"):
        TransformerBlock(n_heads=3)(np.ones((1, 2, 8), "float32"), np.ones((1, 2), bool))


def test_position_embedding_indexes_from_the_most_recent_end():
    layer = PositionEmbedding(5, 4)
    full = _np(layer(np.zeros((1, 5, 4), "float32")))
    short = _np(layer(np.zeros((1, 3, 4), "float32")))
    np.testing.assert_array_equal(short[0], full[0, 2:])


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_block_select_computes_the_selected_rows(causal, norm_first):
    """BERT4Rec's last block computes only its hidden positions: ``select @`` the full
    output, a zero selection row giving 0."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 8)).astype("float32")
    valid = np.ones((3, 6), bool)
    valid[0, :2] = False
    select = np.zeros((3, 2, 6), "float32")
    select[0, 0, 4] = select[0, 1, 2] = 1.0
    select[1, 0, 0] = 1.0  # row 1's second slot selects nothing
    select[2, 0, 5] = select[2, 1, 1] = 1.0
    block = TransformerBlock(n_heads=2, causal=causal, norm_first=norm_first, dropout=0.0)
    full, w_full = block(x, valid, return_attention=True)
    part, w_part = block(x, valid, return_attention=True, select=select)
    assert tuple(part.shape) == (3, 2, 8) and tuple(w_part.shape) == (3, 2, 2, 6)
    expected = np.einsum("bqs,bsd->bqd", select, np.asarray(full))
    np.testing.assert_allclose(np.asarray(part), expected, rtol=1e-5, atol=1e-6)
    chosen = np.einsum("bqs,bhst->bhqt", select, np.asarray(w_full))
    rows = select.sum(-1) > 0  # a zero row's weights are not used
    np.testing.assert_allclose(np.asarray(w_part)[rows[:, None, :].repeat(2, 1)],
                               chosen[rows[:, None, :].repeat(2, 1)], rtol=1e-5, atol=1e-7)
