"""The reference of a fused convolution + bias + activation: the same operations composed on the exact sum.

The bias is added to the reference's double-double (value, low) with an error-free TwoSum and the pair is
renormalised, so its sign is the sign of its leading part; relu and leaky_relu's power-of-two slope then act on
the pair exactly. The reference's own error passes through the activation times its Lipschitz constant (1 for
both), plus the float64 rounding of the two low parts' sum (crosscheck.core.bounds derives the backend's bound).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from crosscheck.core.bounds import ACTIVATIONS, F64_U
from crosscheck.core.problem import ConvProblem
from crosscheck.reference.elementwise import two_sum
from crosscheck.reference.result import ReferenceResult


def bias_shape(problem: ConvProblem) -> tuple[int, ...]:
    """How a (C_out,) bias broadcasts over the canonical output (N, C_out, *spatial)."""
    return (1, problem.spec.out_channels, *(1,) * problem.spec.rank)


def fused_reference(conv: ReferenceResult, problem: ConvProblem, bias: np.ndarray, activation: str) -> ReferenceResult:
    """act(conv + bias) from the convolution's reference `conv` (real, floating-point problems)."""
    act = ACTIVATIONS[activation]
    b = np.broadcast_to(np.asarray(bias, np.float64).reshape(bias_shape(problem)), conv.value.shape)
    s, e = two_sum(np.asarray(conv.value, np.float64), b)
    low = e if conv.low is None else e + conv.low
    hi, lo = two_sum(s, low)  # renormalised: |lo| ≤ ulp(hi)/2, so hi + lo has hi's sign (or lo's where hi = 0)
    error = conv.error_bound + F64_U * np.abs(low)  # the rounding of e + conv.low
    if activation == "identity":
        return replace(conv, value=hi, low=lo, error_bound=error, method=f"{conv.method}+bias")
    negative = (hi < 0) | ((hi == 0) & (lo < 0))
    scale = np.where(negative, act.slope, 1.0)  # 0 (relu) or a power of two: exact
    method = f"{conv.method}+bias+{activation}"
    return ReferenceResult(hi * scale, lo * scale, conv.magnitude, act.lipschitz * error, method)
