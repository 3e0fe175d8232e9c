"""Correct, but only for 2-D problems: declines the rest with NotImplementedError."""

from __future__ import annotations

import numpy as np

from verify_targets._conv import correlate


def conv(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    if x.ndim != 4:
        raise NotImplementedError(f"only 2-D convolutions, got {x.ndim - 2}-D")
    return correlate(x, w, **kw)  # type: ignore[arg-type]


NOT_A_FUNCTION = 42
