"""Shared index arithmetic of the reference views: padding, grouping and the strided windows."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from crosscheck.core.problem import ConvSpec


def work_dtype(a: np.ndarray) -> type:
    """float64, or complex128 for complex arrays: where the reference views compute."""
    return np.complex128 if np.iscomplexobj(a) else np.float64


def grouped_input(x: np.ndarray, spec: ConvSpec, dtype: type | None = None, *, modulus: bool = False) -> np.ndarray:
    """Zero-padded input (|x| if `modulus`) as (N, G, C_in/G, *padded_size) in `dtype` (default: `work_dtype(x)`).

    Written into a zeroed array in one pass (np.pad costs a conversion copy and ~30 µs of Python besides, which
    is most of a small problem's reference)."""
    dtype = dtype or work_dtype(x)
    n, c, *size = x.shape
    xp = np.zeros((n, c, *(m + lo + hi for m, (lo, hi) in zip(size, spec.pads))), dtype)
    inside = xp[(slice(None), slice(None), *(slice(lo, lo + m) for m, (lo, _) in zip(size, spec.pads)))]
    inside[...] = np.abs(x) if modulus else x
    return xp.reshape(n, spec.groups, c // spec.groups, *xp.shape[2:])


def grouped_weight(w: np.ndarray, spec: ConvSpec, dtype: type | None = None) -> np.ndarray:
    """Weight as (G, C_out/G, C_in/G, *kernel) in `dtype` (default: `work_dtype(w)`)."""
    dtype = dtype or work_dtype(w)
    o = w.shape[0]
    return w.astype(dtype).reshape(spec.groups, o // spec.groups, *w.shape[1:])


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
