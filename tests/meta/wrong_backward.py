"""Backward passes written in plain NumPy: one correct backend, several deliberately wrong ones.

The correct one scatters each kernel tap's products back onto the input positions it read (grad_x,
convᵀ) and correlates the input with the cotangent (grad_w), accumulating like the frameworks
(float32 for narrow floats) in its own order. The meta-tests require the backward properties to pass
it and to catch each wrong one.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import wrong_convolutions as wc

from crosscheck.backends.base import Backend, Capabilities
from crosscheck.core.dtypes import FLOAT_DTYPES
from crosscheck.core.problem import ConvProblem, ConvSpec


def _acc(dtype: np.dtype) -> type:
    return np.float32 if dtype.itemsize < 4 and dtype.kind != "i" else dtype.type


def _taps(spec: ConvSpec) -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(k) for k in spec.kernel)))


def _index(spec: ConvSpec, tap: tuple[int, ...]) -> tuple[slice, ...]:
    """The padded-input positions tap `tap` reads for every output position."""
    return tuple(
        slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, s, o in zip(tap, spec.dilation, spec.stride, spec.out_size)
    )


def transpose(spec: ConvSpec, g: np.ndarray, w: np.ndarray, *, flip: bool = False, narrow: bool = False) -> np.ndarray:
    """convᵀ(g, w) by scattering; `flip=True` uses the kernel reversed (a classic mistake), `narrow=True`
    sums float16/bfloat16 in that type (what torch and TensorFlow do on the CPU)."""
    acc = g.dtype.type if narrow else _acc(g.dtype)
    if flip:
        w = np.flip(w, axis=tuple(range(2, w.ndim)))
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(spec.in_size, spec.pads))
    out: np.ndarray = np.zeros((spec.batch, spec.in_channels, *padded), dtype=acc)
    cg, og = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    for tap in reversed(_taps(spec)):
        for grp in range(spec.groups):
            gs: np.ndarray = g[:, grp * og : (grp + 1) * og].astype(acc)  # (N, og, *out)
            w_index: tuple[slice | int, ...] = (slice(grp * og, (grp + 1) * og), slice(None), *tap)
            ws: np.ndarray = w[w_index].astype(acc)  # (og, cg)
            contrib = np.moveaxis(np.tensordot(gs, ws, axes=([1], [0])), -1, 1)  # (N, cg, *out)
            out[(slice(None), slice(grp * cg, (grp + 1) * cg), *_index(spec, tap))] += contrib
    crop = tuple(slice(lo, lo + n) for (lo, _), n in zip(spec.pads, spec.in_size))
    return np.ascontiguousarray(out[(slice(None), slice(None), *crop)]).astype(g.dtype)


def weight_grad(spec: ConvSpec, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    acc = _acc(x.dtype)
    xp: np.ndarray = np.pad(x.astype(acc), [(0, 0), (0, 0), *spec.pads])
    cg, og = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    gw: np.ndarray = np.zeros((spec.out_channels, cg, *spec.kernel), dtype=acc)
    spatial = list(range(2, 2 + spec.rank))
    for tap in _taps(spec):
        for grp in range(spec.groups):
            xs = xp[(slice(None), slice(grp * cg, (grp + 1) * cg), *_index(spec, tap))]  # (N, cg, *out)
            gs2: np.ndarray = g[:, grp * og : (grp + 1) * og].astype(acc)
            w_index: tuple[slice | int, ...] = (slice(grp * og, (grp + 1) * og), slice(None), *tap)
            gw[w_index] = np.tensordot(gs2, xs, axes=([0, *spatial], [0, *spatial]))
    return gw.astype(x.dtype)


class NumpyBackward(Backend):
    """Right forward, right vector-Jacobian product, right transposed convolution."""

    name = "numpy-backward"
    framework = "numpy"

    def capabilities(self) -> Capabilities:
        sub = Capabilities(dtypes=FLOAT_DTYPES, padding=("explicit",))
        return Capabilities(dtypes=FLOAT_DTYPES, padding=("explicit",), gradients=sub, transposed=sub)

    def run(self, problem: ConvProblem) -> np.ndarray:
        s = problem.spec
        return wc.correlate(problem.x, problem.w, stride=s.stride, padding=s.pads, dilation=s.dilation, groups=s.groups)

    def vjp(self, problem: ConvProblem, cotangent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = problem.spec
        return transpose(s, cotangent, problem.w), weight_grad(s, problem.x, cotangent)

    def conv_transpose(self, problem: ConvProblem, g: np.ndarray) -> np.ndarray:
        return transpose(problem.spec, g, problem.w)


class NegatedInputGradient(NumpyBackward):
    name = "negated-input-gradient"

    def vjp(self, problem: ConvProblem, cotangent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gx, gw = super().vjp(problem, cotangent)
        return -gx, gw


class WeightGradientMissesABatchItem(NumpyBackward):
    name = "weight-gradient-misses-a-batch-item"

    def vjp(self, problem: ConvProblem, cotangent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gx, _ = super().vjp(problem, cotangent)
        g = cotangent.copy()
        g[-1] = 0  # the last batch item's contribution is lost (with batch 1, the whole gradient)
        return gx, weight_grad(problem.spec, problem.x, g)


class OutputPaddingOffByOne(NumpyBackward):
    """Reads output_padding as one more than it is (wrapping at the stride): one output row too many
    where the stride leaves room, one too few where output_padding was already stride − 1."""

    name = "output-padding-off-by-one"

    def conv_transpose(self, problem: ConvProblem, g: np.ndarray) -> np.ndarray:
        s = problem.spec
        sizes = []
        for n, (lo, hi), k, st, d, o in zip(s.in_size, s.pads, s.kernel, s.stride, s.dilation, s.out_size):
            pad = (n + lo + hi - ((k - 1) * d + 1)) % st
            sizes.append((o - 1) * st - lo - hi + d * (k - 1) + 1 + (pad + 1) % st)
        wrong = s.with_(in_size=tuple(sizes))
        return transpose(wrong, g, problem.w) if wrong.out_size == s.out_size else np.zeros((1,))


class OutputPaddingAtTheStart(NumpyBackward):
    """Puts output_padding's extra positions before the first output instead of after the last."""

    name = "output-padding-at-the-start"

    def conv_transpose(self, problem: ConvProblem, g: np.ndarray) -> np.ndarray:
        s = problem.spec
        pads = []
        for n, (lo, hi), k, st, d in zip(s.in_size, s.pads, s.kernel, s.stride, s.dilation):
            pad = (n + lo + hi - ((k - 1) * d + 1)) % st
            pads.append((lo - pad, hi + pad) if lo >= pad else (lo, hi))
        return transpose(s.with_(padding=tuple(pads)), g, problem.w)


class UnflippedTransposedKernel(NumpyBackward):
    """A transposed convolution that forgets to flip the kernel: the full correlation of g with w."""

    name = "unflipped-transposed-kernel"

    def conv_transpose(self, problem: ConvProblem, g: np.ndarray) -> np.ndarray:
        return transpose(problem.spec, g, problem.w, flip=True)


def odd_batches_refused(spec: ConvSpec) -> str | None:
    """A module-level (picklable) constraint of a backward space, for the process-isolation test."""
    return "odd batches are refused" if spec.batch % 2 else None


class ConstrainedBackward(NumpyBackward):
    """The right backward pass, with a constraint on its gradients' space only."""

    name = "constrained-backward"

    def capabilities(self) -> Capabilities:
        caps = super().capabilities()
        assert caps.gradients is not None
        return replace(caps, gradients=replace(caps.gradients, constraints=(odd_batches_refused,)))


class NarrowTransposedSums(NumpyBackward):
    """Keeps the transposed convolution's float16/bfloat16 sums in that type."""

    name = "narrow-transposed-sums"

    def conv_transpose(self, problem: ConvProblem, g: np.ndarray) -> np.ndarray:
        return transpose(problem.spec, g, problem.w, narrow=True)
