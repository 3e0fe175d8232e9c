"""Wrong: the textbook convolution (the kernel flipped), what scipy.signal.convolve computes."""

from __future__ import annotations

import numpy as np

from verify_targets._conv import correlate


def conv(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    return correlate(x, np.flip(w, axis=tuple(range(2, w.ndim))), **kw)  # type: ignore[arg-type]
