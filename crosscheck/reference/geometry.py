"""Shared index arithmetic of the reference views: padding, grouping and the strided windows."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import as_strided

from crosscheck.core.problem import ConvSpec


def work_dtype(a: np.ndarray) -> type:
    """float64, or complex128 for complex arrays: where the reference views compute."""
    return np.complex128 if np.iscomplexobj(a) else np.float64


def grouped_input(x: np.ndarray, spec: ConvSpec, dtype: type | None = None) -> np.ndarray:
    """Zero-padded input as (N, G, C_in/G, *padded_size) in `dtype` (default: `work_dtype(x)`).

    Written into a zeroed array in one pass (np.pad costs a conversion copy and ~30 µs of Python besides, which
    is most of a small problem's reference). Without padding it is x itself, converted only where its dtype
    differs, as a read-only view: a 1×1 layer's input is its own im2col matrix and needs no pass at all."""
    dtype = dtype or work_dtype(x)
    n, c, *size = x.shape
    if not any(lo or hi for lo, hi in spec.pads):
        view: np.ndarray = x.astype(dtype, copy=False).reshape(n, spec.groups, c // spec.groups, *size)
        view.flags.writeable = False
        return view
    xp = np.zeros((n, c, *(m + lo + hi for m, (lo, hi) in zip(size, spec.pads))), dtype)
    inside = xp[(slice(None), slice(None), *(slice(lo, lo + m) for m, (lo, _) in zip(size, spec.pads)))]
    inside[...] = x
    return xp.reshape(n, spec.groups, c // spec.groups, *xp.shape[2:])


def grouped_weight(w: np.ndarray, spec: ConvSpec, dtype: type | None = None) -> np.ndarray:
    """Weight as (G, C_out/G, C_in/G, *kernel) in `dtype` (default: `work_dtype(w)`)."""
    dtype = dtype or work_dtype(w)
    o = w.shape[0]
    return w.astype(dtype).reshape(spec.groups, o // spec.groups, *w.shape[1:])


def tap_windows(x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Every input element each kernel tap multiplies at each output position, as one read-only strided view of x
    (..., *padded) shaped (..., *kernel, *out): element [..., t, m] is x[..., m·stride + t·dilation].

    Built from x's strides in one call: sliding_window_view, then indexing and transposing it, spent ~25 µs of Python
    per im2col, a tenth of a 2.6·10⁶-multiply-add problem's whole reference."""
    rank = spec.rank
    lead, space = x.strides[:-rank], x.strides[-rank:]
    shape = (*x.shape[:-rank], *spec.kernel, *spec.out_size)
    strides = (
        *lead,
        *(step * d for step, d in zip(space, spec.dilation)),
        *(step * s for step, s in zip(space, spec.stride)),
    )
    return as_strided(x, shape, strides, writeable=False)


def kernel_offsets(spec: ConvSpec) -> Iterator[tuple[int, ...]]:
    return iter(np.ndindex(*spec.kernel))


def window(xg: np.ndarray, spec: ConvSpec, offset: tuple[int, ...]) -> np.ndarray:
    """The input elements that kernel tap `offset` multiplies, for every output position.

    Shape (N, G, C_in/G, *out_size): element [..., m] is x_pad[..., m·stride + offset·dilation].
    """
    index: list[slice] = [slice(None)] * 3
    for o, d, s, n_out in zip(offset, spec.dilation, spec.stride, spec.out_size):
        start = o * d
        index.append(slice(start, start + (n_out - 1) * s + 1, s))
    return xg[tuple(index)]


def ungroup(y: np.ndarray) -> np.ndarray:
    """(N, G, C_out/G, *out) -> the canonical (N, C_out, *out)."""
    n, g, og = y.shape[:3]
    return y.reshape(n, g * og, *y.shape[3:])
