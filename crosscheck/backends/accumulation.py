"""Probes of the precision a backend's backward sums are carried in (float16/bfloat16 inputs).

The contract (`crosscheck.core.bounds`) is a float32 accumulator for narrow floats; a framework that keeps a sum in
the narrow type breaks the bound by a factor that grows with K, which is a finding, not noise. With
p significand bits, 2^p + 1 rounds back to 2^p, so a sum of [2^p, 1, 1] carried in the narrow type
gives 2^p in one of the two orders (big first, big last), where the exact 2^p + 2 is representable
and float32 accumulation returns it. Adapters run these probes through their own `vjp` and
`conv_transpose` and leave out a dtype that fails, with a reason naming the known finding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from crosscheck.core.dtypes import dtype_info
from crosscheck.core.problem import ConvProblem, ConvSpec

Vjp = Callable[[ConvProblem, np.ndarray], tuple[np.ndarray, np.ndarray]]
Transpose = Callable[[ConvProblem, np.ndarray], np.ndarray]


def _problem(spec: ConvSpec, x: np.ndarray | None = None, w: np.ndarray | None = None) -> ConvProblem:
    """Ones everywhere, except `x` or `w` where given (reshaped to the spec's shapes)."""
    dt = dtype_info(spec.dtype).numpy
    x = np.ones(spec.x_shape, dt) if x is None else x.reshape(spec.x_shape)
    w = np.ones(spec.w_shape, dt) if w is None else w.reshape(spec.w_shape)
    return ConvProblem(spec, x, w)


def narrow_sum_errors(
    dtype: str, layout: str, vjp: Vjp | None = None, conv_transpose: Transpose | None = None
) -> dict[str, tuple[float, float]]:
    """{what: (got, exact)} for each backward sum that `vjp` / `conv_transpose` keep in `dtype`:
    grad_x over kernel taps and over output channels, grad_w over the batch and over output
    positions, convᵀ over kernel taps. Empty for dtypes of 24 or more significand bits."""
    info = dtype_info(dtype)
    if not info.is_float or info.significand_bits >= 24:
        return {}
    big = 2.0**info.significand_bits

    def spec(batch: int, c_out: int, size: int, kernel: int, pad: int = 0) -> ConvSpec:
        return ConvSpec(batch, 1, c_out, (size,), (kernel,), padding=((pad, pad),), dtype=dtype, layout=layout)

    wrong: dict[str, tuple[float, float]] = {}
    for order, values in (("big first", [big, 1.0, 1.0]), ("big last", [1.0, 1.0, big])):
        v = np.asarray(values, dtype=info.numpy)
        # One input element under three taps (padding 2): grad_x and convᵀ sum w over the taps.
        taps = _problem(spec(1, 1, 1, 3, pad=2), w=v)
        got: dict[str, float] = {}
        if vjp is not None:
            cases = {
                "grad_x over kernel taps": (taps, 0),
                "grad_x over output channels": (_problem(spec(1, 3, 1, 1), w=v), 0),
                "grad_w over the batch": (_problem(spec(3, 1, 1, 1), x=v), 1),
                "grad_w over output positions": (_problem(spec(1, 1, 3, 1), x=v), 1),
            }
            for what, (problem, which) in cases.items():
                ones = np.ones(problem.spec.y_shape, info.numpy)
                got[what] = float(vjp(problem, ones)[which].ravel()[0])
        if conv_transpose is not None:
            got["convᵀ over kernel taps"] = float(
                conv_transpose(taps, np.ones(taps.spec.y_shape, info.numpy)).ravel()[0]
            )
        wrong.update({f"{what} ({order})": (value, big + 2) for what, value in got.items() if value != big + 2})
    return wrong


_RESULT_NAMES = {"grad_x": "input-gradient", "grad_w": "weight-gradient", "convᵀ": "conv-transpose"}


def narrow_sum_finding(prefix: str, framework: str, dtype: str, wrong: dict[str, tuple[float, float]]) -> str | None:
    """The capability reason naming the known findings (ids `{prefix}-{dtype}-<result>-sums-in-{dtype}`,
    one per result that sums in the narrow type) from `narrow_sum_errors`' answer; None if all were exact."""
    if not wrong:
        return None
    ids = sorted({f"{prefix}-{dtype}-{_RESULT_NAMES[what.split()[0]]}-sums-in-{dtype}" for what in wrong})
    got = "; ".join(f"{what} gives {v:g}, exact {e:g}" for what, (v, e) in wrong.items())
    return (
        f"finding {', '.join(ids)}: {framework} sums {dtype} in {dtype}, not float32 ({got}, representable): "
        "the float32-accumulator contract does not hold"
    )
