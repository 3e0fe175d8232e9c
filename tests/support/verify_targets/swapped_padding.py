"""Wrong: each dimension's low pad is applied at the high end and vice versa."""

from __future__ import annotations

import numpy as np

from verify_targets._conv import Pads, correlate


def conv(x: np.ndarray, w: np.ndarray, *, padding: Pads, **kw: object) -> np.ndarray:
    return correlate(x, w, padding=[(hi, lo) for lo, hi in padding], **kw)  # type: ignore[arg-type]
