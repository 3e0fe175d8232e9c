"""Correct: im2col — every window unfolded into a column, then one matrix product per group."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from verify_targets._conv import Pads, accumulator, out_size


def conv(
    x: np.ndarray, w: np.ndarray, *, stride: Sequence[int], padding: Pads, dilation: Sequence[int], groups: int
) -> np.ndarray:
    acc = accumulator(x.dtype)
    rank = x.ndim - 2
    n, c_in = x.shape[:2]
    c_out, cg = w.shape[:2]
    og = c_out // groups
    kernel = w.shape[2:]
    xp: np.ndarray = np.pad(x.astype(acc), [(0, 0), (0, 0), *padding])
    out = [
        out_size(size, lo, hi, k, s, d)
        for size, (lo, hi), k, s, d in zip(x.shape[2:], padding, kernel, stride, dilation)
    ]
    # Index of every (output position, tap) pair along each spatial axis: position*stride + tap*dilation.
    grids = [np.arange(o)[:, None] * s + np.arange(k)[None, :] * d for o, k, s, d in zip(out, kernel, stride, dilation)]
    index = np.ix_(*[g.ravel() for g in grids])
    cols = xp[(slice(None), slice(None), *index)]  # (N, C, o0*k0, o1*k1, ...)
    cols = cols.reshape(n, c_in, *[v for o, k in zip(out, kernel) for v in (o, k)])
    # -> (N, groups, positions, cg * taps): positions first, then the channel and the taps of a window.
    pos_axes = [2 + 2 * i for i in range(rank)]
    tap_axes = [3 + 2 * i for i in range(rank)]
    cols = cols.transpose(0, *pos_axes, 1, *tap_axes)
    cols = cols.reshape(n, int(np.prod(out)), groups, cg * int(np.prod(kernel))).transpose(0, 2, 1, 3)
    mat: np.ndarray = w.astype(acc).reshape(groups, og, cg * int(np.prod(kernel)))  # (groups, og, cg * taps)
    y = np.matmul(cols, mat.transpose(0, 2, 1)[None])  # the dot products: (N, groups, positions, og)
    y = y.transpose(0, 1, 3, 2).reshape(n, c_out, *out)
    return np.ascontiguousarray(y).astype(x.dtype)
