"""Hangs: never returns on a batch of more than one; right otherwise."""

from __future__ import annotations

import time

import numpy as np

from verify_targets._conv import correlate


def conv(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    if x.shape[0] > 1:
        time.sleep(3600)
    return correlate(x, w, **kw)  # type: ignore[arg-type]
