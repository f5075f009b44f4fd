"""Data-adaptive activations."""

from __future__ import annotations

from .._backend import keras

ops = keras.ops


@keras.saving.register_keras_serializable(package="sklattn")
class Dice(keras.layers.Layer):
    """Data Adaptive Activation Function (Zhou et al., 2018, eq. 9).

    ``f(s) = p(s) * s + (1 - p(s)) * alpha * s`` with
    ``p(s) = sigmoid((s - E[s]) / sqrt(Var[s] + epsilon))``.

    In training ``E[s]`` and ``Var[s]`` are the statistics of the current
    batch (over every axis but the last; positions where ``valid`` is False
    are left out), and exponential moving averages of them are updated; at
    inference the moving averages are used, so a row's output never depends
    on the rest of its batch.

    Parameters
    ----------
    momentum : float, default=0.99
        Momentum of the moving averages.
    epsilon : float, default=1e-8
        Added to the variance.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import Dice
    >>> tuple(Dice()(np.ones((2, 3), "float32")).shape)
    (2, 3)
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-8, **kwargs) -> None:
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon

    def build(self, input_shape) -> None:
        units = input_shape[-1]
        self.alpha = self.add_weight(shape=(units,), initializer="zeros", name="alpha")
        self.moving_mean = self.add_weight(
            shape=(units,), initializer="zeros", trainable=False, name="moving_mean"
        )
        self.moving_variance = self.add_weight(
            shape=(units,), initializer="ones", trainable=False, name="moving_variance"
        )

    def call(self, inputs, training=None, valid=None):
        if training:
            axes = tuple(range(len(inputs.shape) - 1))
            if valid is None:
                mean, variance = ops.moments(inputs, axes)
            else:
                weight = ops.expand_dims(ops.cast(valid, inputs.dtype), -1)
                count = ops.maximum(ops.sum(weight, axis=axes), 1.0)
                weighted = inputs * weight
                mean = ops.sum(weighted, axis=axes) / count
                variance = ops.maximum(
                    ops.sum(weighted * inputs, axis=axes) / count - ops.square(mean), 0.0
                )
            m = self.momentum
            self.moving_mean.assign(m * self.moving_mean + (1.0 - m) * mean)
            self.moving_variance.assign(m * self.moving_variance + (1.0 - m) * variance)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        p = ops.sigmoid((inputs - mean) * ops.rsqrt(variance + self.epsilon))
        # p * s + (1 - p) * alpha * s, with one product fewer
        return inputs * (self.alpha + p * (1.0 - self.alpha))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="sklattn")
class PReLU(keras.layers.Layer):
    """Parametric ReLU with one slope per feature (last axis), for inputs of any rank.

    ``f(s) = max(s, 0) + alpha * min(s, 0)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklattn.layers import PReLU
    >>> tuple(PReLU()(np.ones((2, 5, 3), "float32")).shape)
    (2, 5, 3)
    """

    def build(self, input_shape) -> None:
        self.alpha = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="alpha")

    def call(self, inputs):
        return ops.relu(inputs) - self.alpha * ops.relu(-inputs)

    def compute_output_shape(self, input_shape):
        return input_shape


def get_activation(name: str) -> keras.layers.Layer:
    """A fresh activation layer: ``"dice"``, ``"prelu"`` or any Keras activation name."""
    if name == "dice":
        return Dice()
    if name == "prelu":
        return PReLU()
    return keras.layers.Activation(name)
