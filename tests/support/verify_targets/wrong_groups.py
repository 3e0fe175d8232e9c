"""Wrong: group g takes the input channels g, g + groups, g + 2·groups, ... (interleaved) instead of
the contiguous block g·C_in/groups ... (g + 1)·C_in/groups - 1. Right for depthwise, wrong otherwise."""

from __future__ import annotations

import numpy as np

from verify_targets._conv import correlate


def conv(x: np.ndarray, w: np.ndarray, *, groups: int, **kw: object) -> np.ndarray:
    interleaved = np.concatenate([x[:, g::groups] for g in range(groups)], axis=1)
    return correlate(interleaved, w, groups=groups, **kw)  # type: ignore[arg-type]
