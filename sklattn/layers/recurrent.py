"""Gated recurrent units with attention gates (DIEN's interest extractor and evolution)."""

from __future__ import annotations

from .._backend import TF_BACKEND, keras, tf

ops = keras.ops

GATES = ("GRU", "AGRU", "AUGRU", "AUGRU-released")


@keras.saving.register_keras_serializable(package="sklattn")
class AttentionGRU(keras.layers.Layer):
    """A GRU whose update gate can be driven by attention scores (Zhou et al., 2019).

    With input ``i_t``, previous state ``h_{t-1}`` and attention score ``a_t``::

        u_t  = sigmoid(W_u i_t + U_u h_{t-1} + b_u)              update gate
        r_t  = sigmoid(W_r i_t + U_r h_{t-1} + b_r)              reset gate
        h~_t = tanh(W_h i_t + r_t * (U_h h_{t-1}) + b_h)         candidate state
        h_t  = (1 - g_t) * h_{t-1} + g_t * h~_t

    where the gate ``g_t`` is ``u_t`` (``gate="GRU"``, the GRU of the paper's
    eqs. 1-4), ``a_t`` (``"AGRU"``: attention replaces the update gate),
    ``a_t * u_t`` (``"AUGRU"``: attention scales it, eq. 13) or
    ``1 - (1 - a_t)(1 - u_t)`` (``"AUGRU-released"``: the AUGRU of the authors'
    released code and of DeepCTR, a plain GRU where ``a_t = 0`` and a full update
    where ``a_t = 1``). Steps whose
    ``valid`` flag is False leave the state unchanged, so left padding never
    changes the result. The input projections of all steps are one matrix
    product; only ``U h_{t-1}`` runs inside the recurrence, which is a
    ``keras.ops.scan`` (a compiled loop, not Python) unless ``unroll=True``.

    ``call(inputs, valid=None, scores=None)``: inputs ``(batch, steps, dim)``,
    valid ``(batch, steps)`` bool, scores ``(batch, steps)`` (needed by AGRU and
    AUGRU). Returns the final state ``(batch, units)``, or every state
    ``(batch, steps, units)`` with ``return_sequences=True``.

    Parameters
    ----------
    units : int
        Size of the state.
    gate : {"GRU", "AGRU", "AUGRU", "AUGRU-released"}, default="GRU"
        What drives the update.
    return_sequences : bool, default=False
        Return the state after every step instead of the last one.
    unroll : bool, default=False
        Unroll the recurrence into a static graph when tracing.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import AttentionGRU
    >>> x = np.ones((2, 5, 3), "float32"); a = np.full((2, 5), 0.2, "float32")
    >>> tuple(AttentionGRU(4, gate="AUGRU")(x, scores=a).shape)
    (2, 4)
    """

    def __init__(
        self,
        units: int,
        gate: str = "GRU",
        return_sequences: bool = False,
        unroll: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}; got {gate!r}.")
        self.units = int(units)
        self.gate = gate
        self.return_sequences = bool(return_sequences)
        self.unroll = bool(unroll)

    def build(self, inputs_shape, valid_shape=None, scores_shape=None) -> None:
        dim, u = inputs_shape[-1], self.units
        self.kernel = self.add_weight(
            shape=(dim, 3 * u), initializer="glorot_uniform", name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            shape=(u, 3 * u), initializer="orthogonal", name="recurrent_kernel"
        )
        self.bias = self.add_weight(shape=(3 * u,), initializer="zeros", name="bias")

    def call(self, inputs, valid=None, scores=None):
        if self.gate != "GRU" and scores is None:
            raise ValueError(f"gate={self.gate!r} needs attention scores.")
        batch, steps = ops.shape(inputs)[0], ops.shape(inputs)[1]
        projected = ops.matmul(inputs, self.kernel) + self.bias  # (batch, steps, 3u)
        if valid is None:
            valid = ops.ones((batch, steps), dtype="bool")
        extra = [ops.expand_dims(ops.cast(valid, projected.dtype), -1)]
        if self.gate != "GRU":
            extra.append(ops.expand_dims(ops.cast(scores, projected.dtype), -1))
        # Time-major (steps, batch, 3u + 1 [+ 1]): one slice per step.
        sequence = ops.transpose(ops.concatenate([projected, *extra], axis=-1), (1, 0, 2))
        recurrent = ops.copy(self.recurrent_kernel)  # a tensor, not the variable
        states = gated_recurrence(sequence, recurrent, self.gate, unroll=self.unroll)
        if self.return_sequences:
            return ops.transpose(states, (1, 0, 2))
        return states[-1]

    def compute_output_shape(self, inputs_shape, valid_shape=None, scores_shape=None):
        if self.return_sequences:
            return tuple(inputs_shape[:2]) + (self.units,)
        return (inputs_shape[0], self.units)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "gate": self.gate,
            "return_sequences": self.return_sequences,
            "unroll": self.unroll,
        }


def _scan(step, init, xs, unroll: bool, reverse: bool = False):
    """``carry, ys = scan(step, init, xs)`` over the leading axis of ``xs`` (a tuple or one
    tensor); ``step(carry, x) -> (carry, y)`` with ``y`` a tuple of tensors.

    Unrolled into the graph when ``unroll``; on TensorFlow a ``tf.while_loop`` that keeps
    the carry in loop variables (``keras.ops.scan`` round-trips it through TensorArrays
    at every step, which doubles the cost of these small steps); else ``keras.ops.scan``.
    """
    several = isinstance(xs, tuple)
    first = xs[0] if several else xs
    n = first.shape[0]
    if unroll:
        carry, outputs = init, [None] * n
        for t in reversed(range(n)) if reverse else range(n):
            carry, outputs[t] = step(carry, tuple(x[t] for x in xs) if several else xs[t])
        return carry, tuple(ops.stack([o[k] for o in outputs]) for k in range(len(outputs[0])))
    if not TF_BACKEND:  # pragma: no cover - other Keras backends
        return ops.scan(step, init, xs, reverse=reverse)
    n = tf.shape(first)[0] if n is None else n
    _, probe = step(init, tuple(x[0] for x in xs) if several else xs[0])
    arrays = [tf.TensorArray(y.dtype, size=n, element_shape=y.shape) for y in probe]

    def body(i, carry, arrays):
        t = n - 1 - i if reverse else i
        carry, ys = step(carry, tuple(x[t] for x in xs) if several else xs[t])
        return i + 1, carry, [a.write(t, y) for a, y in zip(arrays, ys, strict=True)]

    _, carry, arrays = tf.while_loop(
        lambda i, *_: i < n, body, (0, init, arrays), maximum_iterations=n
    )
    return carry, tuple(a.stack() for a in arrays)


def gated_recurrence(sequence, recurrent, gate: str = "GRU", unroll: bool = False):
    """The states of :class:`AttentionGRU` over a time-major sequence, with a hand-written
    backward pass.

    ``sequence`` is ``(steps, batch, 3 * units + 1 [+ 1])``: the input projections
    ``[W_u i_t + b_u, W_r i_t + b_r, W_h i_t + b_h]``, the valid flag and (AGRU, AUGRU)
    the attention score; ``recurrent`` is ``U = [U_u, U_r, U_h]`` of shape
    ``(units, 3 * units)``. Returns the states ``(steps, batch, units)``.

    Automatic differentiation of a loop stores and replays every op of every step;
    here the backward loop is written out (about half the ops per step) and the
    gradient of ``U`` is one matrix product over all steps after the loop,
    ``sum_t h_{t-1}^T dZ_t``, instead of one product per step.
    """
    units = recurrent.shape[0]
    u2, u3 = 2 * units, 3 * units

    def gate_of(update, x):
        valid = x[:, u3 : u3 + 1]
        if gate == "GRU":
            return update * valid
        if gate == "AGRU":
            return x[:, u3 + 1 : u3 + 2] * valid
        score = x[:, u3 + 1 : u3 + 2]
        if gate == "AUGRU-released":  # 1 - (1 - a)(1 - u)
            return (update + score * (1.0 - update)) * valid
        return score * update * valid

    @ops.custom_gradient
    def run(sequence, recurrent):
        batch = ops.shape(sequence)[1]

        def step(carry, x):
            h = carry[0]
            hu = ops.matmul(h, recurrent)
            gates = ops.sigmoid(x[:, :u2] + hu[:, :u2])
            update, reset = gates[:, :units], gates[:, units:]
            hc = hu[:, u2:]
            candidate = ops.tanh(x[:, u2:u3] + reset * hc)
            h = h + gate_of(update, x) * (candidate - h)
            out = (h, update, reset, candidate, hc)
            return out, out

        zeros = ops.zeros((batch, units), dtype=sequence.dtype)
        _, (states, update, reset, candidate, hc) = _scan(
            step, (zeros,) * 5, sequence, unroll
        )

        def grad(*args, upstream=None):
            d_states = args[0] if upstream is None else upstream
            previous = ops.concatenate([ops.expand_dims(zeros, 0), states[:-1]], axis=0)

            def back(carry, xs):
                dh_out, h_prev, upd, rst, cand, h_c, x = xs
                dh = dh_out + carry[0]
                g = gate_of(upd, x)
                valid = x[:, u3 : u3 + 1]
                d_gate = dh * (cand - h_prev)
                d_cand = dh * g * (1.0 - cand * cand)
                d_reset = d_cand * h_c * rst * (1.0 - rst)
                if gate == "GRU":
                    d_update = d_gate * valid
                elif gate == "AUGRU":
                    d_update = d_gate * valid * x[:, u3 + 1 : u3 + 2]
                elif gate == "AUGRU-released":
                    d_update = d_gate * valid * (1.0 - x[:, u3 + 1 : u3 + 2])
                else:
                    d_update = ops.zeros_like(d_gate)
                d_update = d_update * upd * (1.0 - upd)
                dz = ops.concatenate([d_update, d_reset, d_cand * rst], axis=-1)  # d(U h)
                dh_prev = dh * (1.0 - g) + ops.matmul(dz, ops.transpose(recurrent))
                parts = [d_update, d_reset, d_cand, ops.zeros_like(valid)]
                if gate == "AUGRU":
                    parts.append(ops.sum(d_gate * valid * upd, axis=-1, keepdims=True))
                elif gate == "AUGRU-released":
                    parts.append(ops.sum(d_gate * valid * (1.0 - upd), axis=-1, keepdims=True))
                elif gate == "AGRU":
                    parts.append(ops.sum(d_gate * valid, axis=-1, keepdims=True))
                out = (dh_prev, dz, ops.concatenate(parts, axis=-1))
                return out, out

            init = (
                zeros,
                ops.zeros((batch, u3), dtype=sequence.dtype),
                ops.zeros_like(sequence[0]),
            )
            _, (_, dz, d_sequence) = _scan(
                back, init, (d_states, previous, update, reset, candidate, hc, sequence),
                unroll, reverse=True,
            )
            d_recurrent = ops.matmul(
                ops.transpose(ops.reshape(previous, (-1, units))), ops.reshape(dz, (-1, u3))
            )
            return d_sequence, d_recurrent

        return states, grad

    return run(sequence, recurrent)
