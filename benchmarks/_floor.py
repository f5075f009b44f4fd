"""The compute floor of a DIN training step on this machine.

A bare TensorFlow step with DIN's matrix shapes and nothing else: the activation
unit's matmuls (split first layer, as sklattn computes it), weighted sum pooling,
the output MLP, the activation (ReLU or unmasked Dice), and a plain SGD update. It has
no embedding lookups, no masking, no Adam, no loss function and no Keras: any
complete implementation of the same graph does at least this work, so its throughput
bounds what any library can reach here with TensorFlow's CPU kernels (XLA on and off).
"""

from __future__ import annotations

import time

from sklattn._backend import tf


def din_step_floor(
    *,
    activation: str,
    batch_size: int = 256,
    maxlen: int = 20,
    history_dim: int = 16,
    mlp_input_dim: int = 57,
    attention_units: tuple[int, int] = (80, 40),
    hidden_units: tuple[int, int] = (256, 128),
    jit_compile: bool = True,
    n_steps: int = 100,
    repeats: int = 3,
) -> float:
    """Best-of-``repeats`` training samples per second of the bare step."""
    B, L, D = batch_size, maxlen, history_dim
    a1, a2 = attention_units
    m1, m2 = hidden_units
    rng = tf.random.Generator.from_seed(0)

    def var(*shape):
        return tf.Variable(rng.normal(shape) * 0.1)

    keys, query = rng.normal((B * L, D)), rng.normal((B * L, D))
    weights = [var(D, a1), var(D, a1), var(D, a1), var(a1, a2), var(a2, 1),
               var(mlp_input_dim, m1), var(m1, m2), var(m2, 1)]
    alphas = [tf.Variable(tf.zeros((n,))) for n in (a1, a2, m1, m2)]
    W1, W2, W3, W4, W5, M1, M2, M3 = weights
    extra = tf.ones((B, mlp_input_dim - 2 * D))

    def act(x, alpha):
        if activation == "relu":
            return tf.nn.relu(x)
        mean, variance = tf.nn.moments(x, [0])
        p = tf.sigmoid((x - mean) * tf.math.rsqrt(variance + 1e-8))
        return x * (alpha + p * (1.0 - alpha))

    trainable = weights + (alphas if activation == "dice" else [])

    @tf.function(jit_compile=jit_compile)
    def step():
        with tf.GradientTape() as tape:
            a = act(keys @ W1 + query @ W2 + (keys * query) @ W3, alphas[0])
            a = act(a @ W4, alphas[1])
            w = tf.reshape(a @ W5, (B, L, 1))
            pooled = tf.reduce_sum(w * tf.reshape(keys, (B, L, D)), axis=1)
            x = tf.concat([pooled, query[:B], extra], axis=1)
            z = act(act(x @ M1, alphas[2]) @ M2, alphas[3])
            loss = tf.reduce_mean(z @ M3)
        for v, g in zip(trainable, tape.gradient(loss, trainable), strict=True):
            v.assign_sub(1e-4 * g)

    for _ in range(20):
        step()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n_steps):
            step()
        best = min(best, (time.perf_counter() - start) / n_steps)
    return B / best
