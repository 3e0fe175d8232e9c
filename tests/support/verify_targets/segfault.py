"""Crashes: dereferences a null pointer on grouped problems; right otherwise."""

from __future__ import annotations

import ctypes

import numpy as np

from verify_targets._conv import correlate


def conv(x: np.ndarray, w: np.ndarray, *, groups: int, **kw: object) -> np.ndarray:
    if groups > 1:
        ctypes.string_at(0)  # SIGSEGV
    return correlate(x, w, groups=groups, **kw)  # type: ignore[arg-type]
