"""Correct, and only normwise accurate: the convolution theorem in float64, the result returned in the input dtype.

Unlike correct_fft it does not patch the elements whose window holds only zeros: there the FFT leaves ~1e-17 of
its neighbours' rounding noise, which the element-wise bound does not allow (it is 0 there) and the normwise
bound does. Integer inputs have an integer correlation: the result is rounded to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from verify_targets._conv import Pads
from verify_targets.correct_fft import _correlate_fft


def conv(
    x: np.ndarray, w: np.ndarray, *, stride: Sequence[int], padding: Pads, dilation: Sequence[int], groups: int
) -> np.ndarray:
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), *padding])
    y = _correlate_fft(xp, w.astype(np.float64), stride, dilation, groups)
    if np.issubdtype(x.dtype, np.integer):
        y = np.rint(y)
    return y.astype(x.dtype)
