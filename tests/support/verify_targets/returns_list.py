"""Right values, wrong type: returns a nested Python list instead of an array."""

from __future__ import annotations

from typing import Any

import numpy as np

from verify_targets._conv import correlate


def conv(x: np.ndarray, w: np.ndarray, **kw: Any) -> Any:
    return correlate(x, w, **kw).tolist()
