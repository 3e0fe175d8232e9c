"""Correct: the convolution theorem — products of FFTs, in float64, then rounded to the input dtype.

An FFT spreads rounding noise over every output element, so an output whose window holds only zeros
comes out as ~1e-17 instead of 0, which no per-element bound allows for float32. The same FFT of |x|
and |w| tells those elements apart (their magnitude is exactly 0, all others at least 2^-12 here), and
they are set to 0. Integer-valued inputs have an integer correlation, so there the result is rounded
to the nearest integer (exact while the noise stays below 0.5, as in FFT-based integer multiplication).
float64 outputs cannot be reached by a float64 FFT at all: declined.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import fft

from verify_targets._conv import Pads, out_size


def _correlate_fft(
    xp: np.ndarray, w: np.ndarray, stride: Sequence[int], dilation: Sequence[int], groups: int
) -> np.ndarray:
    rank = xp.ndim - 2
    axes = tuple(range(2, 2 + rank))
    c_out, cg = w.shape[:2]
    og = c_out // groups
    # Correlation is convolution with the flipped kernel; dilation puts d - 1 zeros between taps.
    eff = [(k - 1) * d + 1 for k, d in zip(w.shape[2:], dilation)]
    wd = np.zeros((c_out, cg, *eff))
    wd[(slice(None), slice(None), *(slice(None, None, d) for d in dilation))] = w
    wd = np.flip(wd, axis=axes)
    shape = [n + e - 1 for n, e in zip(xp.shape[2:], eff)]
    fx = fft.rfftn(xp, s=shape, axes=axes)  # (N, C_in, *f)
    fw = fft.rfftn(wd, s=shape, axes=axes)  # (C_out, cg, *f)
    fy = np.concatenate(
        [
            np.einsum("nc...,oc...->no...", fx[:, g * cg : (g + 1) * cg], fw[g * og : (g + 1) * og])
            for g in range(groups)
        ],
        axis=1,
    )
    full = fft.irfftn(fy, s=shape, axes=axes)
    out = [(n - e) // s + 1 for n, e, s in zip(xp.shape[2:], eff, stride)]
    index = tuple(slice(e - 1, e - 1 + (o - 1) * s + 1, s) for e, o, s in zip(eff, out, stride))
    y: np.ndarray = full[(slice(None), slice(None), *index)]
    return y


def conv(
    x: np.ndarray, w: np.ndarray, *, stride: Sequence[int], padding: Pads, dilation: Sequence[int], groups: int
) -> np.ndarray:
    if x.dtype == np.float64:
        raise NotImplementedError("a float64 FFT cannot meet the float64 per-element bound")
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), *padding])
    w64 = w.astype(np.float64)
    y = _correlate_fft(xp, w64, stride, dilation, groups)
    magnitude = _correlate_fft(np.abs(xp), np.abs(w64), stride, dilation, groups)
    y[magnitude < 1e-6] = 0.0
    if np.array_equal(xp, np.round(xp)) and np.array_equal(w64, np.round(w64)):
        y = np.round(y)
    assert y.shape[2:] == tuple(
        out_size(n, lo, hi, k, s, d)
        for n, (lo, hi), k, s, d in zip(x.shape[2:], padding, w.shape[2:], stride, dilation)
    )
    return y.astype(x.dtype)
