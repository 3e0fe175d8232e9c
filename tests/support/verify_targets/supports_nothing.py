"""Declines every problem."""

from __future__ import annotations

import numpy as np


def conv(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    raise NotImplementedError("not written yet")
