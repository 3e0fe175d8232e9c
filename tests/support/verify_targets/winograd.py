"""Winograd's minimal filtering F(2, 3) (Lavin & Gray 2016) in the accumulator dtype: correct, and only
accurate to the Winograd bound (`--accuracy winograd`); `conv_wrong_constant` is the same kernel with one
transform constant wrong (G's 1/2 for the last tap of the third row written as 1/4), a typo the tests must catch.

Kernels of 3 taps along every axis and stride 1 run as Winograd tiles of 2 outputs per axis (any rank); a dilated
kernel runs on each dilation phase of the input (the space-to-batch way TensorFlow runs atrous convolutions);
every other shape runs the plain correlation, as a library's Winograd path falls back to direct code.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from verify_targets._conv import accumulator, correlate

B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)
G_WRONG = G.copy()
G_WRONG[2, 2] = 0.25


def _along(a: np.ndarray, matrix: np.ndarray, axis: int) -> np.ndarray:
    """matrix applied to `a` along `axis` (in a's dtype: every constant here is exact in it)."""
    return np.moveaxis(np.tensordot(a, matrix.astype(a.dtype).T, axes=([axis], [0])), -1, axis)


def _winograd(xp: np.ndarray, w: np.ndarray, groups: int, g_matrix: np.ndarray) -> np.ndarray:
    rank = xp.ndim - 2
    out = [n - 2 for n in xp.shape[2:]]
    tiles = [(o + 1) // 2 for o in out]
    # Pad so that every tile has its 4 inputs, then gather (..., tile, 4) per axis.
    xp = np.pad(xp, [(0, 0), (0, 0), *((0, 2 * t + 2 - n) for t, n in zip(tiles, xp.shape[2:]))])
    v = xp
    for axis, t in enumerate(tiles):
        index = 2 * np.arange(t)[:, None] + np.arange(4)[None, :]  # (t, 4)
        v = np.take(v, index, axis=2 + 2 * axis)  # the axis becomes (t, 4)
    # v: (N, C, t1, 4, t2, 4, ...): the input transform Bᵀ·d along each 4-axis.
    for axis in range(rank):
        v = _along(v, B_T, 3 + 2 * axis)
    u = w
    for axis in range(rank):
        u = _along(u, g_matrix, 2 + axis)  # (C_out, Cg, 4, 4, ...)
    c_out, cg = w.shape[:2]
    og = c_out // groups
    letters = "pqr"[:rank]  # the transformed axes (upper case: the tiles)
    v_idx = "nc" + "".join(f"{c.upper()}{c}" for c in letters)
    u_idx = "oc" + letters
    m = np.concatenate(
        [
            np.einsum(f"{v_idx},{u_idx}->no{v_idx[2:]}", v[:, g * cg : (g + 1) * cg], u[g * og : (g + 1) * og])
            for g in range(groups)
        ],
        axis=1,
    )
    for axis in range(rank):
        m = _along(m, A_T, 3 + 2 * axis)  # (N, O, t1, 2, t2, 2, ...)
    y = m.reshape(m.shape[0], m.shape[1], *(2 * t for t in tiles))
    return y[(slice(None), slice(None), *(slice(0, o) for o in out))]


def _conv(x: np.ndarray, w: np.ndarray, g_matrix: np.ndarray, **kw: Any) -> np.ndarray:
    stride, padding, dilation, groups = kw["stride"], kw["padding"], kw["dilation"], kw["groups"]
    if np.issubdtype(x.dtype, np.integer):
        raise NotImplementedError("Winograd's transforms need fractions (G holds 1/2): no integer dtypes")
    if any(k != 3 for k in w.shape[2:]) or any(s != 1 for s in stride):
        return correlate(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    acc = accumulator(x.dtype)
    xp: np.ndarray = np.pad(x.astype(acc), [(0, 0), (0, 0), *padding])
    wa: np.ndarray = w.astype(acc)
    out = [n - 2 * d for n, d in zip(xp.shape[2:], dilation)]
    y = np.empty((x.shape[0], w.shape[0], *out), dtype=acc)
    # Output q reads inputs q + u·d: the outputs of one phase (q mod d) are an undilated correlation of that phase.
    for phase in itertools.product(*(range(d) for d in dilation)):
        take = (slice(None), slice(None), *(slice(p, None, d) for p, d in zip(phase, dilation)))
        if any(p >= o for p, o in zip(phase, out)):
            continue  # fewer outputs along an axis than the dilation: this phase has none
        y[take] = _winograd(xp[take], wa, groups, g_matrix)
    return y.astype(x.dtype)


def conv(x: np.ndarray, w: np.ndarray, **kw: Any) -> np.ndarray:
    return _conv(x, w, G, **kw)


def conv_wrong_constant(x: np.ndarray, w: np.ndarray, **kw: Any) -> np.ndarray:
    return _conv(x, w, G_WRONG, **kw)
