"""Fused convolution + bias + activation in plain NumPy: one correct backend, several deliberately wrong ones.

The correct one composes op by op as eager JAX does (the convolution rounded to its dtype, then the bias added in
the accumulator and rounded, then the activation): the bound's second composition. The meta-tests require the
property `fused_bias_activation` to pass it and to catch each wrong one.
"""

from __future__ import annotations

import numpy as np
import wrong_convolutions as wc

from crosscheck.backends.base import Backend, Capabilities
from crosscheck.core.bounds import LEAKY_SLOPE
from crosscheck.core.dtypes import FLOAT_DTYPES
from crosscheck.core.problem import ConvProblem

ACTIVATIONS = ("identity", "relu", "leaky_relu")


def activate(y: np.ndarray, activation: str, slope: float = LEAKY_SLOPE) -> np.ndarray:
    if activation == "relu":
        return np.asarray(np.maximum(y, np.zeros((), y.dtype)))
    if activation == "leaky_relu":
        return np.where(y < 0, y * np.asarray(slope, y.dtype), y).astype(y.dtype)
    return y


class NumpyFused(Backend):
    """Right convolution, right bias, right activation."""

    name = "numpy-fused"
    framework = "numpy"

    def capabilities(self) -> Capabilities:
        sub = Capabilities(dtypes=FLOAT_DTYPES, padding=("explicit",), activations=ACTIVATIONS)
        return Capabilities(dtypes=FLOAT_DTYPES, padding=("explicit",), fused=sub)

    def run(self, problem: ConvProblem) -> np.ndarray:
        s = problem.spec
        return wc.correlate(problem.x, problem.w, stride=s.stride, padding=s.pads, dilation=s.dilation, groups=s.groups)

    def _biased(self, y: np.ndarray, bias: np.ndarray, rank: int) -> np.ndarray:
        acc = np.float32 if y.dtype.itemsize < 4 else y.dtype.type
        b = bias.astype(acc).reshape(-1, *(1,) * rank)
        return np.asarray((y.astype(acc) + b).astype(y.dtype))

    def fused(self, problem: ConvProblem, bias: np.ndarray, activation: str) -> np.ndarray:
        y = self._biased(self.run(problem), bias, problem.spec.rank)
        return activate(y, activation)


class BiasAddedTwice(NumpyFused):
    name = "bias-added-twice"

    def fused(self, problem: ConvProblem, bias: np.ndarray, activation: str) -> np.ndarray:
        y = self._biased(self._biased(self.run(problem), bias, problem.spec.rank), bias, problem.spec.rank)
        return activate(y, activation)


class ActivationBeforeBias(NumpyFused):
    name = "activation-before-bias"

    def fused(self, problem: ConvProblem, bias: np.ndarray, activation: str) -> np.ndarray:
        return self._biased(activate(self.run(problem), activation), bias, problem.spec.rank)


class BiasOnTheLastAxis(NumpyFused):
    """The bias applied per column of the last spatial axis instead of per channel (a layout slip), repeated or
    cut to the output's width."""

    name = "bias-on-the-last-axis"

    def fused(self, problem: ConvProblem, bias: np.ndarray, activation: str) -> np.ndarray:
        y = self.run(problem)
        width = y.shape[-1]
        b = np.resize(bias, width).astype(y.dtype)  # per column, not per channel
        acc = np.float32 if y.dtype.itemsize < 4 else y.dtype.type
        return activate((y.astype(acc) + b.astype(acc)).astype(y.dtype), activation)


class LeakySlopeOfTorchDefault(NumpyFused):
    """leaky_relu with torch's default slope 0.01 instead of the requested 1/8."""

    name = "leaky-slope-0.01"

    def fused(self, problem: ConvProblem, bias: np.ndarray, activation: str) -> np.ndarray:
        return activate(self._biased(self.run(problem), bias, problem.spec.rank), activation, slope=0.01)


class BiasDropped(NumpyFused):
    name = "bias-dropped"

    def fused(self, problem: ConvProblem, bias: np.ndarray, activation: str) -> np.ndarray:
        return activate(self.run(problem), activation)
