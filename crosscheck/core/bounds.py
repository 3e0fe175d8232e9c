"""The floating-point error model, the one every check uses: γ_K and the per-element bound of a convolution.

With K products summed per output element, M = |x| ⋆ |w|, u_out the output dtype's unit roundoff
and u_acc the accumulator's, Higham's dot-product bound (§3.1) followed by one rounding to the
output dtype gives

    |y_backend − y_exact| ≤ u_out·|y_exact| + (1 + u_out)·γ_K(u_acc)·M + λ_out

where λ_out is the output dtype's smallest normal number: an absolute term for results that land
in the subnormal range (gradual underflow or flush-to-zero), which the relative model cannot cover.
In general the γ_K(u_acc) above is an accumulation factor φ (`accumulation_factor`) with
|ŝ − y_exact| ≤ φ·M for the sum ŝ before its final rounding; the output rounding then gives
|ŷ − y| ≤ u_out·|ŝ| + |ŝ − y| ≤ u_out·|y| + (1 + u_out)·φ·M. The cases:

Inputs rounded before they are multiplied (reduced-precision modes: bfloat16 autocast, TF32).
x̃ = x(1 + α), w̃ = w(1 + β) with |α|, |β| ≤ u_in, so x̃·w̃ = x·w(1 + θ), |θ| ≤ 2u_in + u_in² =: ε_in.
The K products then carry (1 + θ_i)(1 + η_i) with |η_i| ≤ γ_K(u_acc) from the accumulation, and
|(1 + θ)(1 + η) − 1| ≤ ε_in + γ_K + ε_in·γ_K:

    φ = (1 + ε_in)·(1 + γ_K(u_acc)) − 1.

Complex values, any summation order (Higham §3.6 for the conventional complex product). Write
x = a + ib, w = c + id. Each component of y is a sum of 2K real products (Re: a·c and −b·d; Im: a·d
and b·c). However an implementation orders them — conventional complex products then complex
additions (depth ≤ K + 1), or each component as one 2K-term real dot product with or without FMA
(depth ≤ 2K) — every real product passes through at most 2K roundings, so each component's error
is at most γ_2K(u)·Σ(|a||c| + |b||d|) (respectively Σ(|a||d| + |b||c|)). Per term,
(|a||c| + |b||d|)² + (|a||d| + |b||c|)² = |x|²|w|² + 4|abcd| ≤ 2|x|²|w|², and the triangle inequality
in ℝ² sums the terms, so with M = Σ|x_i||w_i| (moduli):

    |ŷ − y| ≤ √2·γ_2K(u)·M.

(For K ≥ 2 this covers Higham's γ_{K+2}·M for conventional arithmetic; for K = 1 it is his
Lemma 3.5, √2·γ_2.)

Complex values by the 3M (Gauss) method: three real convolutions T1 = Σac, T2 = Σbd and
T3 = Σ(a+b)(c+d) with the sums a+b, c+d rounded once each, then Re = T1 − T2, Im = T3 − T1 − T2.
With A = Σ|a||c|, B = Σ|b||d| (A + B ≤ M by Cauchy–Schwarz) and C = Σ|a+b||c+d| ≤ 2M:
|T̂1 − T1| ≤ γ_K·A, |T̂2 − T2| ≤ γ_K·B, |T̂3 − T3| ≤ γ_{K+2}·C; one subtraction gives
|R̂e − Re| ≤ γ_{K+1}(A + B) ≤ γ_{K+1}·M, two subtractions (either order) add at most
γ_2·(|T̂1| + |T̂2| + |T̂3|), so |Îm − Im| ≤ γ_{K+4}(A + B + C) ≤ 3γ_{K+4}·M, and

    |ŷ − y| ≤ √(γ_{K+1}² + 9γ_{K+4}²)·M ≤ √10·γ_{K+4}(u)·M.

The imaginary part of a 3M result is not accurate relative to its own products (Higham §23.2.4):
a backend that uses it declares so (`Capabilities.complex_method`), as an FFT backend declares
its normwise bound. For complex outputs both components may land in the subnormal range, so the
absolute term is 2λ_out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

F64_U = 2.0**-53


def gamma(k: int, u: float) -> float:
    """γ_k(u) = k·u / (1 − k·u); infinite when k·u ≥ 1 (no bound exists)."""
    ku = k * u
    return math.inf if ku >= 1 else ku / (1 - ku)


def gamma_array(terms: np.ndarray, u: float) -> np.ndarray:
    """γ_K(u) for an array of term counts K, element by element (infinite where K·u ≥ 1)."""
    ku = np.asarray(terms, dtype=np.float64) * u
    with np.errstate(divide="ignore"):
        return np.asarray(np.where(ku < 1, ku / (1 - ku), np.inf), dtype=np.float64)


COMPLEX_METHODS = ("conventional", "3m")


def rounded_product_error(u_in: float) -> float:
    """ε_in = 2u_in + u_in²: the relative error of x̃·w̃ when x and w were each rounded with u_in."""
    return 2 * u_in + u_in * u_in


def accumulation_factor(terms: int, u_acc: float, *, u_in: float = 0.0, complex_method: str | None = None) -> float:
    """φ with |ŝ − y_exact| ≤ φ·M for the computed sum ŝ before its output rounding (see above).

    `complex_method` None means real values; "conventional" covers every summation order of the
    complex products; "3m" is the Gauss method.
    """
    if complex_method is None:
        acc = gamma(terms, u_acc)
    elif complex_method == "conventional":
        acc = math.sqrt(2) * gamma(2 * terms, u_acc)
    elif complex_method == "3m":
        acc = math.sqrt(10) * gamma(terms + 4, u_acc)
    else:
        raise ValueError(f"complex_method: expected one of {', '.join(COMPLEX_METHODS)}, got {complex_method!r}")
    if not u_in:
        return acc
    return (1 + rounded_product_error(u_in)) * (1 + acc) - 1


def elementwise_bound(
    y_exact: np.ndarray,
    magnitude: np.ndarray,
    terms: int | np.ndarray,
    u_out: float,
    u_acc: float,
    smallest_normal_out: float,
    *,
    u_in: float = 0.0,
    complex_method: str | None = None,
) -> np.ndarray:
    """The per-element bound above, evaluated in float64 and rounded up by a few ulps.

    `terms` is one K for every element, or an array of each element's own K (a gradient's or a transposed
    convolution's: real values, inputs not rounded).
    """
    g: float | np.ndarray
    if isinstance(terms, np.ndarray):
        if u_in or complex_method is not None:
            raise ValueError("a per-element K is for real values with unrounded inputs")
        g = gamma_array(terms, u_acc)
    else:
        g = accumulation_factor(terms, u_acc, u_in=u_in, complex_method=complex_method)
    tiny = 2 * smallest_normal_out if complex_method else smallest_normal_out
    b = u_out * np.abs(y_exact) + (1 + u_out) * g * magnitude + tiny
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


# ---- a fused convolution + bias + activation (property `fused_bias_activation`) ------------------------------------
#
# The backend computes a = act(conv(x, w) + b) as one call. Write z = Σ x·w (exact), y = z + b, a = act(y),
# M = |x| ⋆ |w| and K the convolution's terms; u_out, λ_out are the output dtype's unit roundoff and smallest
# normal number, u_acc the accumulator's. How the framework places the bias is its choice, and both ways occur:
#
#  (A) The bias as one more term of the sum, rounded to the output once (a fused kernel's epilogue in the
#      accumulator, oneDNN's bias, XLA fusing the add into the conversion back to float16). A sum of K + 1
#      terms in any order (Higham §3.1), then one rounding:
#          |ŷ − y| ≤ u_out·|y| + (1 + u_out)·γ_{K+1}(u_acc)·(M + |b|) + λ_out                        =: E_A
#
#  (B) The convolution rounded to the output dtype first, then the bias added in one more operation (an
#      op-by-op composition: eager JAX, an unfused graph). c = fl_out(ŝ) has the convolution's own bound
#          |c − z| ≤ u_out·|z| + (1 + u_out)·γ_K(u_acc)·M + λ_out                                     =: E_c
#      and ŷ = (c + b)(1 + δ) + η with |δ| ≤ u_add, |η| ≤ λ_out, where u_add = u_out when the add runs in the
#      output dtype (accumulator = output) and (1 + u_acc)(1 + u_out) − 1 when it runs in the accumulator and is
#      rounded back (a double rounding: float16 added in float32). Then
#          |ŷ − y| ≤ |c − z| + u_add·|c + b| + λ_out ≤ u_add·|y| + (1 + u_add)·E_c + λ_out,
#      using |c + b| ≤ |y| + |c − z|; and |z| ≤ M in E_c.                                            =: E_B
#
#  The pre-activation bound is max(E_A, E_B): whichever composition the framework chose, it holds; neither is
#  larger in general (E_A's γ_{K+1}·|b| against E_B's second rounding).
#
# The activation. With act Lipschitz with constant L, computed on ŷ with a relative rounding error of at most
# u_act (0 when it is exact in floating point), plus λ_out where its result may land in the subnormal range:
#      |fl(act(ŷ)) − act(y)| ≤ u_act·|act(ŷ)| + L·|ŷ − y| + λ_act
#                            ≤ u_act·|a| + (1 + u_act)·L·max(E_A, E_B) + λ_act,     using |act(ŷ)| ≤ |a| + L·|ŷ − y|.
# relu is exact (max(v, 0) rounds nothing, and cannot underflow): L = 1, u_act = 0, λ_act = 0. leaky_relu with
# slope 2⁻³ multiplies by a power of two, exact in every binary format unless the product leaves the normal range
# (then it may round, or flush to zero, by at most λ_out): L = 1, u_act = 0, λ_act = λ_out. A smooth activation
# (sigmoid, tanh, GELU) needs its implementation's own error bound in ulps, which the frameworks do not state for
# their vectorised exp/tanh/erf (XLA's CPU tanh and erf are rational approximations): they are left out rather
# than given a guessed u_act.
#
# The reference: y = z + b is added to the reference's double-double (value, low) with an error-free TwoSum, and
# relu and the power-of-two slope act exactly on it, so the reference's own error stays L·(its error).


@dataclass(frozen=True)
class Activation:
    """An activation as the fused bound sees it: its Lipschitz constant, its relative rounding u_act, and whether
    its result can land in the subnormal range (λ_act = λ_out) though its input did not."""

    name: str
    lipschitz: float
    u_act: float = 0.0
    underflows: bool = False
    slope: float = 0.0  # leaky_relu's slope for negative inputs (a power of two: exact)


LEAKY_SLOPE = 2.0**-3
ACTIVATIONS: dict[str, Activation] = {
    "identity": Activation("identity", 1.0),
    "relu": Activation("relu", 1.0),
    "leaky_relu": Activation("leaky_relu", 1.0, underflows=True, slope=LEAKY_SLOPE),
}


def fused_bound(
    y_exact: np.ndarray,
    a_exact: np.ndarray,
    conv_exact: np.ndarray,
    magnitude: np.ndarray,
    bias: np.ndarray,
    terms: int,
    u_out: float,
    u_acc: float,
    smallest_normal_out: float,
    activation: Activation,
) -> np.ndarray:
    """max(E_A, E_B) through the activation, per element (see above): `y_exact` = z + b, `a_exact` = act(y),
    `conv_exact` = z, `magnitude` = M, `bias` broadcast to the output's shape; real values only."""
    lam = smallest_normal_out
    e_a = u_out * np.abs(y_exact) + (1 + u_out) * gamma(terms + 1, u_acc) * (magnitude + np.abs(bias)) + lam
    e_c = u_out * np.abs(conv_exact) + (1 + u_out) * gamma(terms, u_acc) * magnitude + lam
    u_add = u_out if u_acc >= u_out else (1 + u_acc) * (1 + u_out) - 1
    e_b = u_add * np.abs(y_exact) + (1 + u_add) * e_c + lam
    pre = np.maximum(e_a, e_b)
    act = activation
    b = act.u_act * np.abs(a_exact) + (1 + act.u_act) * act.lipschitz * pre + (lam if act.underflows else 0.0)
    return np.asarray(b * (1 + 8 * F64_U), dtype=np.float64)
