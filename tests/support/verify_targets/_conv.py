"""A plain correct cross-correlation the wrong targets start from (one kernel tap at a time)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

Pads = Sequence[tuple[int, int]]


def accumulator(dtype: np.dtype) -> type:
    # Like the frameworks on a CPU: half-precision inputs accumulate in float32.
    return np.float32 if dtype.itemsize < 4 else dtype.type


def out_size(n: int, lo: int, hi: int, k: int, s: int, d: int) -> int:
    return (n + lo + hi - (k - 1) * d - 1) // s + 1


def correlate(
    x: np.ndarray,
    w: np.ndarray,
    *,
    stride: Sequence[int],
    padding: Pads,
    dilation: Sequence[int],
    groups: int,
) -> np.ndarray:
    acc = accumulator(x.dtype)
    xp: np.ndarray = np.pad(x.astype(acc), [(0, 0), (0, 0), *padding])
    c_out, cg = w.shape[:2]
    og = c_out // groups
    kernel = w.shape[2:]
    out = [out_size(n, lo, hi, k, s, d) for n, (lo, hi), k, s, d in zip(x.shape[2:], padding, kernel, stride, dilation)]
    y = np.zeros((x.shape[0], c_out, *out), dtype=acc)
    for tap in itertools.product(*(range(k) for k in kernel)):
        window = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, s, o in zip(tap, dilation, stride, out))
        for g in range(groups):
            xs = xp[(slice(None), slice(g * cg, (g + 1) * cg), *window)]  # (N, cg, *out)
            w_index: tuple[slice | int, ...] = (slice(g * og, (g + 1) * og), slice(None), *tap)
            ws: np.ndarray = w[w_index].astype(acc)  # (og, cg)
            y[:, g * og : (g + 1) * og] += np.moveaxis(np.tensordot(xs, ws, axes=([1], [1])), -1, 1)
    return y.astype(x.dtype)
