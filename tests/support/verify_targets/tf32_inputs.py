"""Wrong in float32 only: rounds the float32 inputs to TF32 (a 10-bit stored mantissa, as a GPU's tensor cores do
when TF32 is allowed) before multiplying, then sums in float32 — the float32 bound does not allow it."""

from __future__ import annotations

import numpy as np

from verify_targets._conv import correlate


def _tf32(a: np.ndarray) -> np.ndarray:
    """Round to nearest (ties away from zero, as the hardware's conversion) to 10 stored mantissa bits."""
    bits = a.astype(np.float32).view(np.uint32)
    rounded = (bits + np.uint32(1 << 12)) & np.uint32(0xFFFFE000)
    return rounded.view(np.float32)


def conv(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    if x.dtype == np.float32:
        x, w = _tf32(x), _tf32(w)
    return correlate(x, w, **kw)  # type: ignore[arg-type]
