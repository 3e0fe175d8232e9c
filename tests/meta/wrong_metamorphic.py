"""Convolutions that are right on most problems but break one metamorphic identity each, and one
that conjugates complex kernels: the meta-tests require the matching property to catch each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import wrong_convolutions as wc

Pads = Sequence[tuple[int, int]]


def leaky_batch(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    """Batch item n also gets 1/16 of item n − 1's result: a cross-talk that one item alone never shows."""
    y = wc.correlate(x, w, **kw)  # type: ignore[arg-type]
    y[1:] += (y[:-1].astype(np.float64) / 16).astype(y.dtype)
    return y


def squared_term(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    """conv(x + x·|x|/32, w): close to the convolution, but not linear in x."""
    x64 = x.astype(np.float64)
    return wc.correlate((x64 + x64 * np.abs(x64) / 32).astype(x.dtype), w, **kw)  # type: ignore[arg-type]


def dilation_off_by_one(x: np.ndarray, w: np.ndarray, *, dilation: Sequence[int], **kw: object) -> np.ndarray:
    """Dilated taps one position early: tap u ≥ 1 lands at u·d − 1 instead of u·d."""
    if max(dilation) == 1:
        return wc.correlate(x, w, dilation=dilation, **kw)  # type: ignore[arg-type]
    eff = tuple((k - 1) * d + 1 for k, d in zip(w.shape[2:], dilation))
    inserted = np.zeros(w.shape[:2] + eff, dtype=w.dtype)
    index = tuple(np.array([0, *(u * d - 1 for u in range(1, k))]) for k, d in zip(w.shape[2:], dilation))
    where: tuple[Any, ...] = (slice(None), slice(None), *np.ix_(*index))
    inserted[where] = w
    return wc.correlate(x, inserted, dilation=(1,) * len(dilation), **kw)  # type: ignore[arg-type]


def stride_from_one(x: np.ndarray, w: np.ndarray, *, stride: Sequence[int], padding: Pads, **kw: object) -> np.ndarray:
    """A strided output that samples the stride-1 result from position 1 instead of 0."""
    if max(stride) == 1:
        return wc.correlate(x, w, stride=stride, padding=padding, **kw)  # type: ignore[arg-type]
    ones = (1,) * len(stride)
    full = wc.correlate(x, w, stride=ones, padding=[(lo, hi + 1) for lo, hi in padding], **kw)  # type: ignore[arg-type]
    exact = wc.correlate(x, w, stride=stride, padding=padding, **kw)  # type: ignore[arg-type]
    index: tuple[Any, ...] = (..., *(slice(1, 1 + (n - 1) * s + 1, s) for n, s in zip(exact.shape[2:], stride)))
    return np.ascontiguousarray(full[index])


def drops_last_position(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    """Ignores the last input position along every spatial axis, as an off-by-one loop bound would."""
    x = x.copy()
    for axis in range(2, x.ndim):
        x[(slice(None),) * axis + (-1,)] = 0
    return wc.correlate(x, w, **kw)  # type: ignore[arg-type]


def conjugating(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    """Σ x·conj(w): scipy.signal.correlate's complex correlation, not the CNN's."""
    return wc.correlate(x, np.conj(w), **kw)  # type: ignore[arg-type]


# property -> (wrong function, what it gets wrong)
WRONG: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "batch_independence": (leaky_batch, "batch items leak into each other"),
    "linearity": (squared_term, "adds a small x² term"),
    "group_concatenation": (wc.wrong_group_mapping, "feeds group g the input channels of group g + 1"),
    "dilation_as_zero_insertion": (dilation_off_by_one, "places dilated taps one position early"),
    "stride_as_subsampling": (stride_from_one, "starts the strided sampling at offset 1"),
    "shift_equivariance": (drops_last_position, "ignores the last input position"),
}
