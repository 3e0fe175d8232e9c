"""Bad usage, not a wrong convolution: the padding keyword is named `pad`, so the function cannot be called as
function(x, w, *, stride, padding, dilation, groups)."""

from __future__ import annotations

import numpy as np


def conv(x: np.ndarray, w: np.ndarray, *, stride: object, pad: object, dilation: object, groups: int) -> np.ndarray:
    raise AssertionError("never called: verify refuses the signature first")
