"""Wrong in half precision only: sums float16 (and bfloat16) products in float16 (bfloat16) itself, where the
contract (and every framework on a CPU) accumulates them in float32. float32 and float64 are right."""

from __future__ import annotations

import numpy as np

from verify_targets import _conv


def conv(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    keep = _conv.accumulator
    _conv.accumulator = lambda dtype: dtype.type  # the bug: the input dtype is the accumulator
    try:
        return _conv.correlate(x, w, **kw)  # type: ignore[arg-type]
    finally:
        _conv.accumulator = keep
