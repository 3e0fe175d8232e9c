"""The reference: one definition (the element-wise sum) and the views the project proves equal.

- `direct`: exact rational arithmetic, one output element at a time (the oracle of the oracles);
- `gemm`: the same sum as matrix products through BLAS, with error-free float64 slices (the default);
- `elementwise`: the same sum vectorised over output positions, one kernel tap at a time;
- `im2col`: the dot product of each flattened window with the flattened filter (a matrix product);
- `fft`: the convolution theorem, accurate only in norm.
"""

from __future__ import annotations

from collections.abc import Callable

from crosscheck.core.problem import ConvProblem
from crosscheck.reference.direct import direct
from crosscheck.reference.elementwise import elementwise
from crosscheck.reference.fft import fft
from crosscheck.reference.gemm import gemm
from crosscheck.reference.im2col import im2col
from crosscheck.reference.result import ReferenceResult

METHODS: dict[str, Callable[[ConvProblem], ReferenceResult]] = {
    "gemm": gemm,
    "elementwise": elementwise,
    "direct": direct,
    "im2col": im2col,
    "fft": fft,
}


def reference(problem: ConvProblem, method: str = "gemm") -> ReferenceResult:
    """The reference result of `problem` by `method` (see the module docstring)."""
    try:
        fn = METHODS[method]
    except KeyError:
        raise ValueError(f"method: unknown reference {method!r}; expected one of {', '.join(METHODS)}") from None
    return fn(problem)


__all__ = ["METHODS", "ReferenceResult", "direct", "elementwise", "fft", "gemm", "im2col", "reference"]
