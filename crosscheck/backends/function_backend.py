"""Any Python function with crosscheck's convolution signature, as a backend.

    function(x, w, *, stride, padding, dilation, groups) -> array (N, C_out, *out)

x is (N, C_in, *spatial), w is (C_out, C_in // groups, *kernel), both NumPy arrays of the problem's
dtype; stride and dilation are tuples with one int per spatial dimension; padding is a tuple of
explicit (lo, hi) pairs. This is the contract of `crosscheck verify` and of the meta-tests. The
function may raise NotImplementedError for a problem it does not support: that example is counted
as unsupported, not failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from crosscheck.backends.base import Backend, Capabilities
from crosscheck.core.dtypes import FLOAT_DTYPES
from crosscheck.core.problem import ConvProblem

ConvFunction = Callable[..., Any]


class FunctionBackend(Backend):
    framework = "crosscheck"
    may_decline = True

    def __init__(
        self,
        fn: ConvFunction,
        name: str | None = None,
        *,
        dtypes: Sequence[str] = FLOAT_DTYPES,
        ranks: Sequence[int] = (1, 2, 3),
        device: str = "cpu",
    ) -> None:
        super().__init__(device)
        self.fn = fn
        self.name = name or str(getattr(fn, "__qualname__", repr(fn)))
        self.description = f"user function {self.name}"
        self._caps = Capabilities(ranks=tuple(ranks), dtypes=tuple(dtypes), padding=("explicit",))

    def capabilities(self) -> Capabilities:
        return self._caps

    def run(self, problem: ConvProblem) -> np.ndarray:
        spec = problem.spec
        y = self.fn(
            problem.x.copy(),
            problem.w.copy(),
            stride=spec.stride,
            padding=spec.pads,
            dilation=spec.dilation,
            groups=spec.groups,
        )
        if not isinstance(y, np.ndarray) and not hasattr(y, "__array__"):
            # A list (or None, or a number) would become an array of another dtype and be reported as a dtype
            # mismatch: name the mistake instead. Framework tensors (they have __array__) are accepted.
            raise TypeError(f"returned {type(y).__name__}, expected numpy.ndarray")
        return np.asarray(y)
