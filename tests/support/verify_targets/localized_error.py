"""Wrong in one element: the last output element is off by 0.1 % (plus 0.001)."""

from __future__ import annotations

import numpy as np

from verify_targets._conv import correlate


def conv(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    y = correlate(x, w, **kw)  # type: ignore[arg-type]
    y.flat[-1] += np.asarray(1e-3 * (abs(float(y.flat[-1])) + 1), dtype=y.dtype)
    return y
