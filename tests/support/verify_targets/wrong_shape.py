"""Wrong shape: squeezes the output, so any dimension of size 1 (a batch of one) disappears."""

from __future__ import annotations

import numpy as np

from verify_targets._conv import correlate


def conv(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    return np.squeeze(correlate(x, w, **kw))  # type: ignore[arg-type]
