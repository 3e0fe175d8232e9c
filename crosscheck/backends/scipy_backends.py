"""SciPy: `scipy.signal.correlate`, `scipy.signal.convolve` with the kernel flipped, and
`scipy.ndimage.correlate`, each mapped onto the CNN convolution (a sum over input channels).

None of them knows stride, dilation or groups: the adapter subsamples the stride-1 result
(identical values), inserts zeros into the kernel for dilation (zero products change no sum) and
loops over output channels. The input channels and the batch are axes of one N-d correlation, as a
SciPy user would write it: the (N, C_in/G, *size) input block with a (1, C_in/G, *kernel) filter,
whose valid output along the channel axis is the single position where the filter covers every
channel, i.e. the channel sum. scipy computes that whole K-term sum, so the K-term error bound
describes it. The FFT path transforms the spatial axes only (scipy.signal.fftconvolve with `axes`,
the routine correlate(method='fft') calls) and sums channels afterwards in the problem's dtype: its
normwise bound is per channel.

For complex input `scipy.signal.correlate` and `scipy.ndimage.correlate` conjugate their second
argument (Σ x·conj(w), the signal-processing correlation); the CNN's correlation does not (Σ x·w), so
those adapters hand them conj(w). `scipy.signal.convolve` conjugates nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from crosscheck.backends.base import Backend, Capabilities
from crosscheck.core.dtypes import COMPLEX_DTYPES, INT_DTYPES
from crosscheck.core.padding import effective_kernel
from crosscheck.core.problem import ConvProblem, ConvSpec

Correlate = Callable[[np.ndarray, np.ndarray], np.ndarray]
PerOutput = Callable[[np.ndarray, np.ndarray], np.ndarray]

_NO_HALF = (
    ("dtype float16", "scipy.signal's N-d correlate raises 'Unsupported type' for float16"),
    ("dtype bfloat16", "scipy.signal's N-d correlate raises 'Unsupported type' for bfloat16"),
)


# SciPy's correlate and fftconvolve know no dilation: `_dilate` inserts zeros, so their work grows with dilation^rank.
# Measured (2 loaded cores): DeepLab's ASPP rate 24 at 512->128 channels, 3.5·10⁶ multiply-adds, took 30 s (direct)
# and 69 s (FFT); rates 12-36 at 2048->256 channels outlasted the worker's 60 s in a realistic run. DeepLab's backbone
# rates (2, 4) stay in.
MAX_ZERO_INSERTED_DILATION = 4
_ZERO_INSERTED = (
    f"dilation > {MAX_ZERO_INSERTED_DILATION}",
    "the kernel is dilated by inserting zeros, so the work grows with dilation^rank: DeepLab's ASPP rate 24 at "
    "512->128 channels (3.5e6 multiply-adds) took 30 s direct and 69 s by FFT",
)


def _dilate(w: np.ndarray, dilation: tuple[int, ...]) -> np.ndarray:
    eff = tuple((k - 1) * d + 1 for k, d in zip(w.shape, dilation))
    out = np.zeros(eff, dtype=w.dtype)
    out[tuple(slice(None, None, d) for d in dilation)] = w
    return out


def channel_sum(problem: ConvProblem, per_output: PerOutput) -> np.ndarray:
    """per_output(x block (N, C_in/G, *padded), dilated w[o] (C_in/G, *kernel)) -> (N, *valid) for each
    output channel o, then the stride subsampling."""
    spec = problem.spec
    xp = np.pad(problem.x, [(0, 0), (0, 0), *spec.pads])
    cg, og = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    sub = (slice(None),) + tuple(slice(0, (n - 1) * s + 1, s) for n, s in zip(spec.out_size, spec.stride))
    y = np.zeros(spec.y_shape, dtype=problem.x.dtype)
    for o in range(spec.out_channels):
        g = o // og
        y[:, o] = per_output(xp[:, g * cg : (g + 1) * cg], _dilate(problem.w[o], (1, *spec.dilation)))[sub]
    return y


def spanning_channels(correlate_valid: Correlate) -> PerOutput:
    """The filter as a (1, C_in/G, *kernel) block: the valid N-d correlation's single channel position is
    the channel sum."""
    return lambda x, w: correlate_valid(x, w[None])[:, 0]


class _Scipy(Backend):
    framework = "scipy"

    def dispatch(self) -> dict[str, Any]:
        from crosscheck.core.hardware import native_dispatch

        return native_dispatch("SciPy's correlate, ndimage and pocketfft loops are compiled C with no ISA switch")


class ScipyCorrelate(_Scipy):
    name = "scipy.correlate"
    framework = "scipy"
    module = "scipy.signal"
    description = "scipy.signal.correlate(mode='valid', method='direct')"

    def capabilities(self) -> Capabilities:
        return Capabilities(
            dtypes=("float64", "float32", *INT_DTYPES, *COMPLEX_DTYPES),
            max_dilation=MAX_ZERO_INSERTED_DILATION,
            unsupported=(*_NO_HALF, _ZERO_INSERTED),
        )

    def run(self, problem: ConvProblem) -> np.ndarray:
        from scipy import signal

        # conj(w): scipy's correlate conjugates its second argument (a no-op for real w).
        return channel_sum(
            problem, spanning_channels(lambda a, b: signal.correlate(a, np.conj(b), mode="valid", method="direct"))
        )


class ScipyConvolveFlipped(_Scipy):
    name = "scipy.convolve"
    framework = "scipy"
    module = "scipy.signal"
    description = "scipy.signal.convolve(mode='valid', method='direct') with the kernel flipped"

    def capabilities(self) -> Capabilities:
        return Capabilities(
            dtypes=("float64", "float32", *INT_DTYPES, *COMPLEX_DTYPES),
            max_dilation=MAX_ZERO_INSERTED_DILATION,
            unsupported=(*_NO_HALF, _ZERO_INSERTED),
        )

    def run(self, problem: ConvProblem) -> np.ndarray:
        from scipy import signal

        # Textbook convolution flips the kernel; flipping it first turns it into the CNN's correlation.
        return channel_sum(
            problem, spanning_channels(lambda a, b: signal.convolve(a, np.flip(b), mode="valid", method="direct"))
        )


class ScipyFFT(_Scipy):
    name = "scipy.fft"
    framework = "scipy"
    module = "scipy.signal"
    description = (
        "scipy.signal.fftconvolve(mode='valid', axes=spatial), channels summed after: only a normwise bound holds"
    )

    def capabilities(self) -> Capabilities:
        return Capabilities(
            dtypes=("float64", "float32", *COMPLEX_DTYPES),
            bound="normwise",
            max_dilation=MAX_ZERO_INSERTED_DILATION,
            unsupported=(
                *_NO_HALF,
                _ZERO_INSERTED,
                ("dtype int32/int64", "the FFT path computes in floating point and rounds back"),
            ),
        )

    def run(self, problem: ConvProblem) -> np.ndarray:
        from scipy import signal

        spec = problem.spec
        xp = np.pad(problem.x, [(0, 0), (0, 0), *spec.pads])
        g, cg, og = spec.groups, spec.in_channels // spec.groups, spec.out_channels // spec.groups
        axes = tuple(range(4, 4 + spec.rank))
        # Every group at once, broadcast: x (N, G, 1, Cg, *size) against w (1, G, Og, Cg, *kernel).
        x = xp.reshape(spec.batch, g, 1, cg, *xp.shape[2:])
        wd = _dilate(problem.w, (1, 1, *spec.dilation))
        w = wd.reshape(1, g, og, cg, *wd.shape[2:])
        # correlate(a, conj(b)) is convolve(a, flip(b)): what correlate(method='fft') hands fftconvolve.
        per_channel = signal.fftconvolve(x, np.flip(w, axis=axes), mode="valid", axes=axes)
        y = np.sum(per_channel.astype(problem.x.dtype), axis=3)  # (N, G, Og, *full)
        sub = (slice(None),) * 3 + tuple(slice(0, (n - 1) * s + 1, s) for n, s in zip(spec.out_size, spec.stride))
        return np.asarray(y[sub].reshape(spec.y_shape))


# One ndimage.correlate call per (input, output) channel pair (four for complex values), each ~15 µs of overhead at
# least: past this many a problem outlasts the worker's 60 s (ResNet-50's 512→2048 1×1 layer, complex: 4·10⁶ calls).
MAX_NDIMAGE_CALLS = 2**16


def _ndimage_calls(spec: ConvSpec) -> str | None:
    calls = spec.out_channels * (spec.in_channels // spec.groups) * (4 if spec.dtype in COMPLEX_DTYPES else 1)
    if calls > MAX_NDIMAGE_CALLS:
        return f"{calls} ndimage calls (one per channel pair, four for complex) exceed {MAX_NDIMAGE_CALLS}"
    return None


class ScipyNdimage(_Scipy):
    name = "scipy.ndimage"
    framework = "scipy"
    module = "scipy.ndimage"
    description = (
        "scipy.ndimage.correlate(mode='constant', cval=0, origin=the padding's split), one call a channel pair"
    )

    def capabilities(self) -> Capabilities:
        # Only what ndimage computes without waste: its output has its input's size, which is SAME's (and
        # SAME_LOWER's) at stride 1. A stride would compute every stride-1 position to keep one in s^rank; VALID, or
        # explicit pads totalling less than eff - 1, every position of the zero-extended input to keep fewer.
        # Dilation costs nothing: ndimage leaves zero weights out of its footprint (NI_Correlate), so the inserted
        # zeros are never multiplied.
        return Capabilities(
            dtypes=("float64", "float32", *INT_DTYPES, *COMPLEX_DTYPES),
            padding=("SAME", "SAME_LOWER"),
            max_stride=1,
            constraints=(_ndimage_calls,),
            unsupported=(
                ("dtype float16", "scipy.ndimage raises 'array type not supported' for float16"),
                ("dtype bfloat16", "scipy.ndimage raises 'array type not supported' for bfloat16"),
                ("stride > 1", "scipy.ndimage has no stride: it would compute every stride-1 position and drop most"),
                (
                    f"more than {MAX_NDIMAGE_CALLS} channel-pair calls",
                    "scipy.ndimage has no channel axis: one call per (input, output) channel pair, four for complex "
                    "values, ~15 µs each at least; more would outlast the worker's timeout",
                ),
                (
                    "padding VALID and explicit",
                    "scipy.ndimage's output has its input's size: pads totalling less than the window would compute "
                    "positions the convolution drops (SAME and SAME_LOWER are the sizes it computes)",
                ),
            ),
        )

    def run(self, problem: ConvProblem) -> np.ndarray:
        from scipy import ndimage

        spec = problem.spec
        # The output position i sums w[j]·x[i + j - lo]; ndimage centres the window at eff // 2 and shifts it by
        # -origin, so origin = lo - eff // 2 places it (always within ndimage's allowed origins, as lo < eff).
        origin = (
            0,
            *(lo - effective_kernel(k, d) // 2 for (lo, _), k, d in zip(spec.pads, spec.kernel, spec.dilation)),
        )
        cg, og = spec.in_channels // spec.groups, spec.out_channels // spec.groups
        y = np.zeros(spec.y_shape, dtype=problem.x.dtype)
        for o in range(spec.out_channels):
            g = o // og
            # conj(w): for complex weights ndimage.correlate conjugates them, as scipy.signal does.
            w = _dilate(np.conj(problem.w[o]), (1, *spec.dilation))
            for c in range(cg):
                # One call per channel pair over the whole batch, summed in the problem's dtype (the K-term bound
                # covers any order); a filter spanning the channel axis would compute C_in/G channel positions.
                y[:, o] += ndimage.correlate(
                    problem.x[:, g * cg + c], w[c][None], mode="constant", cval=0, origin=origin
                )
        return y
