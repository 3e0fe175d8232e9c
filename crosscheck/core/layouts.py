"""Memory layouts a backend can be handed: the same values in a different arrangement in memory."""

from __future__ import annotations

import numpy as np


def channels_last(a: np.ndarray) -> np.ndarray:
    """(N, C, *spatial) -> (N, *spatial, C), contiguous (NHWC / NDHWC / NWC)."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def from_channels_last(a: np.ndarray) -> np.ndarray:
    """(N, *spatial, C) -> (N, C, *spatial)."""
    return np.moveaxis(a, -1, 1)


def strided_view(a: np.ndarray) -> np.ndarray:
    """A non-contiguous view with `a`'s shape and values: every other element of a larger buffer,
    stored with the axes in reverse order, so no stride is the contiguous one."""
    big = np.zeros(a.shape[::-1][:-1] + (2 * a.shape[0],), dtype=a.dtype)  # reversed axes, first doubled
    view = big[..., ::2].transpose(tuple(range(a.ndim - 1, -1, -1)))
    view[...] = a
    assert not view.flags.c_contiguous or a.size <= 1
    return view
