"""SciPy: `scipy.signal.correlate`, `scipy.signal.convolve` with the kernel flipped, and
`scipy.ndimage.correlate`, each mapped onto the CNN convolution (a sum over input channels).

None of them knows stride, dilation or groups: the adapter subsamples the stride-1 result
(identical values), inserts zeros into the kernel for dilation (zero products change no sum) and
loops over groups and channels. The channel sum is done in the problem's dtype, so the K-term
error bound still describes the whole computation.

For complex input `scipy.signal.correlate` and `scipy.ndimage.correlate` conjugate their second
argument (Σ x·conj(w), the signal-processing correlation); the CNN's correlation does not (Σ x·w), so
those adapters hand them conj(w). `scipy.signal.convolve` conjugates nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from crosscheck.backends.base import Backend, Capabilities
from crosscheck.dtypes import COMPLEX_DTYPES, INT_DTYPES
from crosscheck.problem import ConvProblem

Correlate = Callable[[np.ndarray, np.ndarray], np.ndarray]

_NO_HALF = (
    ("dtype float16", "scipy.signal's N-d correlate raises 'Unsupported type' for float16"),
    ("dtype bfloat16", "scipy.signal's N-d correlate raises 'Unsupported type' for bfloat16"),
)


def _dilate(w: np.ndarray, dilation: tuple[int, ...]) -> np.ndarray:
    eff = tuple((k - 1) * d + 1 for k, d in zip(w.shape, dilation))
    out = np.zeros(eff, dtype=w.dtype)
    out[tuple(slice(None, None, d) for d in dilation)] = w
    return out


def channel_sum(problem: ConvProblem, correlate_valid: Correlate) -> np.ndarray:
    """Σ_c correlate_valid(x[n, c], w[o, c]) per (n, o), then the stride subsampling."""
    spec = problem.spec
    xp = np.pad(problem.x, [(0, 0), (0, 0), *spec.pads])
    cg, og = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    sub = tuple(slice(0, (n - 1) * s + 1, s) for n, s in zip(spec.out_size, spec.stride))
    y = np.zeros(spec.y_shape, dtype=problem.x.dtype)
    for n in range(spec.batch):
        for o in range(spec.out_channels):
            g = o // og
            acc = None
            for c in range(cg):
                part = correlate_valid(xp[n, g * cg + c], _dilate(problem.w[o, c], spec.dilation))
                acc = part if acc is None else acc + part
            assert acc is not None
            y[n, o] = acc[sub]
    return y


class ScipyCorrelate(Backend):
    name = "scipy.correlate"
    framework = "scipy"
    module = "scipy.signal"
    description = "scipy.signal.correlate(mode='valid', method='direct')"

    def capabilities(self) -> Capabilities:
        return Capabilities(dtypes=("float64", "float32", *INT_DTYPES, *COMPLEX_DTYPES), unsupported=_NO_HALF)

    def run(self, problem: ConvProblem) -> np.ndarray:
        from scipy import signal

        # conj(w): scipy's correlate conjugates its second argument (a no-op for real w).
        return channel_sum(problem, lambda a, b: signal.correlate(a, np.conj(b), mode="valid", method="direct"))


class ScipyConvolveFlipped(Backend):
    name = "scipy.convolve"
    framework = "scipy"
    module = "scipy.signal"
    description = "scipy.signal.convolve(mode='valid', method='direct') with the kernel flipped"

    def capabilities(self) -> Capabilities:
        return Capabilities(dtypes=("float64", "float32", *INT_DTYPES, *COMPLEX_DTYPES), unsupported=_NO_HALF)

    def run(self, problem: ConvProblem) -> np.ndarray:
        from scipy import signal

        # Textbook convolution flips the kernel; flipping it first turns it into the CNN's correlation.
        return channel_sum(problem, lambda a, b: signal.convolve(a, np.flip(b), mode="valid", method="direct"))


class ScipyFFT(Backend):
    name = "scipy.fft"
    framework = "scipy"
    module = "scipy.signal"
    description = "scipy.signal.correlate(mode='valid', method='fft'): only a normwise bound holds"

    def capabilities(self) -> Capabilities:
        return Capabilities(
            dtypes=("float64", "float32", *COMPLEX_DTYPES),
            bound="normwise",
            unsupported=(
                *_NO_HALF,
                ("dtype int32/int64", "the FFT path computes in floating point and rounds back"),
            ),
        )

    def run(self, problem: ConvProblem) -> np.ndarray:
        from scipy import signal

        return channel_sum(problem, lambda a, b: signal.correlate(a, np.conj(b), mode="valid", method="fft"))


class ScipyNdimage(Backend):
    name = "scipy.ndimage"
    framework = "scipy"
    module = "scipy.ndimage"
    description = "scipy.ndimage.correlate(mode='constant', cval=0) cropped to the valid region"

    def capabilities(self) -> Capabilities:
        return Capabilities(
            dtypes=("float64", "float32", *INT_DTYPES, *COMPLEX_DTYPES),
            unsupported=(
                ("dtype float16", "scipy.ndimage raises 'array type not supported' for float16"),
                ("dtype bfloat16", "scipy.ndimage raises 'array type not supported' for bfloat16"),
            ),
        )

    def run(self, problem: ConvProblem) -> np.ndarray:
        from scipy import ndimage

        def valid(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            # conj(w): for complex weights ndimage.correlate conjugates them, as scipy.signal does.
            full = ndimage.correlate(a, np.conj(b), mode="constant", cval=0)
            # ndimage centres the kernel at k // 2; the valid window starting at m sits at m + k // 2.
            index = tuple(slice(k // 2, k // 2 + n - k + 1) for n, k in zip(a.shape, b.shape))
            return np.asarray(full[index])

        return channel_sum(problem, valid)
