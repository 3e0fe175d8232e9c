"""Convolutions with the crosscheck function signature: one correct, several deliberately wrong.

The meta-tests feed the wrong ones to the property suite and require that it catches each; the
correct ones (other summation orders, other algorithms) must pass.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

Pads = Sequence[tuple[int, int]]


def _acc_dtype(dtype: np.dtype) -> type:
    # Like the frameworks: narrow floats accumulate in float32, others in their own dtype.
    return np.float32 if dtype.itemsize < 4 and dtype.kind != "i" else dtype.type


def correlate(
    x: np.ndarray,
    w: np.ndarray,
    *,
    stride: Sequence[int],
    padding: Pads,
    dilation: Sequence[int],
    groups: int,
    reverse: bool = False,
) -> np.ndarray:
    """Cross-correlation one kernel tap at a time, channels contracted with tensordot.

    `reverse=True` visits the taps in the opposite order: a different summation order that must
    still be within the bound.
    """
    rank = x.ndim - 2
    acc = _acc_dtype(x.dtype)
    xp: np.ndarray = np.pad(x.astype(acc), [(0, 0), (0, 0), *padding])
    n = x.shape[0]
    c_out, cg = w.shape[:2]
    og = c_out // groups
    kernel = w.shape[2:]
    out = tuple((xp.shape[2 + d] - ((kernel[d] - 1) * dilation[d] + 1)) // stride[d] + 1 for d in range(rank))
    y = np.zeros((n, c_out, *out), dtype=acc)
    taps = list(itertools.product(*(range(k) for k in kernel)))
    for tap in reversed(taps) if reverse else taps:
        index = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, s, o in zip(tap, dilation, stride, out))
        for g in range(groups):
            xs = xp[(slice(None), slice(g * cg, (g + 1) * cg), *index)]  # (N, Cg, *out)
            w_index: tuple[slice | int, ...] = (slice(g * og, (g + 1) * og), slice(None), *tap)
            ws: np.ndarray = w[w_index].astype(acc)  # (og, Cg)
            y[:, g * og : (g + 1) * og] += np.moveaxis(np.tensordot(xs, ws, axes=([1], [1])), -1, 1)
    return y.astype(x.dtype)


def correct_reversed_order(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    return correlate(x, w, reverse=True, **kw)  # type: ignore[arg-type]


def flipped_kernel(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    """Textbook convolution: the kernel is flipped (what scipy.signal.convolve2d computes)."""
    return correlate(x, np.flip(w, axis=tuple(range(2, w.ndim))), **kw)  # type: ignore[arg-type]


def swapped_padding(x: np.ndarray, w: np.ndarray, *, padding: Pads, **kw: object) -> np.ndarray:
    """Puts each dimension's low pad at the high end and vice versa."""
    return correlate(x, w, padding=[(hi, lo) for lo, hi in padding], **kw)  # type: ignore[arg-type]


def dropped_input_channel(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    """Forgets the last input channel of the depth sum."""
    x = x.copy()
    x[:, -1] = 0
    return correlate(x, w, **kw)  # type: ignore[arg-type]


def wrong_group_mapping(x: np.ndarray, w: np.ndarray, *, groups: int, **kw: object) -> np.ndarray:
    """Feeds group g's filters the input channels of group g + 1."""
    cg = x.shape[1] // groups
    return correlate(np.roll(x, -cg, axis=1), w, groups=groups, **kw)  # type: ignore[arg-type]


def localized_error(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    """Right everywhere except the last output element, which is off by 0.1%."""
    y = correlate(x, w, **kw)  # type: ignore[arg-type]
    y.flat[-1] += np.asarray(1e-3 * (abs(float(y.flat[-1])) + 1), dtype=y.dtype)
    return y


WRONG: dict[str, Callable[..., np.ndarray]] = {
    "flipped_kernel": flipped_kernel,
    "swapped_padding": swapped_padding,
    "dropped_input_channel": dropped_input_channel,
    "wrong_group_mapping": wrong_group_mapping,
    "localized_error": localized_error,
}


def two_bugs(
    x: np.ndarray, w: np.ndarray, *, stride: Sequence[int], dilation: Sequence[int], **kw: object
) -> np.ndarray:
    """Wrong in two unrelated ways: strided outputs scaled by 1.01, dilated ones shifted by 1 (a second bug that a
    search stopping at the first failure never shows)."""
    y = correlate(x, w, stride=stride, dilation=dilation, **kw)  # type: ignore[arg-type]
    if max(stride) > 1:
        y = y * y.dtype.type(1.01)
    if max(dilation) > 1:
        y = y + y.dtype.type(1)
    return y
