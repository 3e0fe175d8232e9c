"""Wrong: output length rounded up ("ceil mode"): with a stride, a last partial window is kept,
padded with zeros at the end."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from verify_targets._conv import Pads, correlate


def conv(
    x: np.ndarray, w: np.ndarray, *, stride: Sequence[int], padding: Pads, dilation: Sequence[int], groups: int
) -> np.ndarray:
    pads = []
    for n, (lo, hi), k, s, d in zip(x.shape[2:], padding, w.shape[2:], stride, dilation):
        span = n + lo + hi - (k - 1) * d - 1
        pads.append((lo, hi + (-span) % s))  # enough extra zeros for one more window
    return correlate(x, w, stride=stride, padding=pads, dilation=dilation, groups=groups)
