"""The floating-point error model (DESIGN §3): γ_K and the per-element bound of a convolution.

With K products summed per output element, M = |x| ⋆ |w|, u_out the output dtype's unit roundoff
and u_acc the accumulator's, Higham's dot-product bound (§3.1) followed by one rounding to the
output dtype gives

    |y_backend − y_exact| ≤ u_out·|y_exact| + (1 + u_out)·γ_K(u_acc)·M + λ_out

where λ_out is the output dtype's smallest normal number: an absolute term for results that land
in the subnormal range (gradual underflow or flush-to-zero), which the relative model cannot cover.
"""

from __future__ import annotations

import math

import numpy as np

F64_U = 2.0**-53


def gamma(k: int, u: float) -> float:
    """γ_k(u) = k·u / (1 − k·u); infinite when k·u ≥ 1 (no bound exists)."""
    ku = k * u
    return math.inf if ku >= 1 else ku / (1 - ku)


def elementwise_bound(
    y_exact: np.ndarray,
    magnitude: np.ndarray,
    terms: int,
    u_out: float,
    u_acc: float,
    smallest_normal_out: float,
) -> np.ndarray:
    """The per-element bound above, evaluated in float64 and rounded up by a few ulps."""
    g = gamma(terms, u_acc)
    b = u_out * np.abs(y_exact) + (1 + u_out) * g * magnitude + smallest_normal_out
    # The bound's own float64 evaluation must not make it smaller than the exact bound.
    return np.asarray(b * (1 + 8 * F64_U), dtype=np.float64)


def normwise_fft_factor(length: int, u: float) -> float:
    """e_F for an FFT of `length` points: log2(L)·η/(1 − log2(L)·η), η = μ + γ_4(√2 + μ), μ ≈ u.

    Higham, Accuracy and Stability of Numerical Algorithms, Theorem 24.2.
    """
    eta = u + gamma(4, u) * (math.sqrt(2) + u)
    t = max(math.log2(max(length, 2)), 1.0) * eta
    return t / (1 - t)


def probabilistic_scale(terms: int, u_acc: float) -> float:
    """√K·u: the error scale expected of random rounding errors (Higham & Mary 2019)."""
    return math.sqrt(terms) * u_acc
