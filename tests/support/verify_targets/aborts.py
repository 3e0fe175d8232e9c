"""Crashes: calls abort() (SIGABRT, as a failed C assert does) on dilated problems; right otherwise."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from verify_targets._conv import correlate


def conv(x: np.ndarray, w: np.ndarray, *, dilation: Sequence[int], **kw: object) -> np.ndarray:
    if max(dilation) > 1:
        os.abort()
    return correlate(x, w, dilation=dilation, **kw)  # type: ignore[arg-type]
