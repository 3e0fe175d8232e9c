"""The element-wise-sum definition, vectorised over output positions (the plainest view; `gemm` is the default).

    y[n, o, m] = Σ_c Σ_u x_pad[n, g·Cg + c, m·stride + u·dilation] · w[o, c, u]

One term (c, u) at a time is multiplied into every output position at once. Float32 and narrower
values multiply exactly in float64, so the float64 sum is off by at most γ_K(2⁻⁵³)·M. Float64
inputs get error-free products (Dekker's TwoProduct) accumulated with TwoSum: a double-double
result whose error is O(K·u²)·M, far below the float64 bound it is used to judge.

Complex values are sums of real products, one component at a time: Re y = Σ a·c − Σ b·d and
Im y = Σ a·d + Σ b·c for x = a + ib, w = c + id. For complex64 every real product is exact in
float64 (complex128 arithmetic rounds only the sums); complex128 takes the double-double path over
the 2K real products of each component.
"""

from __future__ import annotations

import math

import numpy as np

from crosscheck.core.bounds import F64_U, accumulation_factor, gamma
from crosscheck.core.dtypes import dtype_info
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.reference.geometry import grouped_input, grouped_weight, kernel_offsets, ungroup, window
from crosscheck.reference.result import ReferenceResult

_SPLITTER = 2.0**27 + 1.0


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = _SPLITTER * a
    hi = t - (t - a)
    return hi, a - hi


def two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p, e with p + e == a·b exactly (no overflow assumed; our values are small)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s, e with s + e == a + b exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _grouped_shape(spec: ConvSpec) -> tuple[int, ...]:
    return (spec.batch, spec.groups, spec.out_channels // spec.groups, *spec.out_size)


def magnitude(problem: ConvProblem) -> np.ndarray:
    """M = |x| ⋆ |w| per output element (moduli for complex), rounded up past its own float64 error."""
    spec = problem.spec
    # Complex moduli are taken in float64 (np.abs of complex128: within an ulp, hence the 4u below).
    xg = np.abs(grouped_input(problem.x, spec))
    wg = np.abs(grouped_weight(problem.w, spec))
    m = np.zeros(_grouped_shape(spec))
    for off in kernel_offsets(spec):
        m += np.einsum("ngc...,goc->ngo...", window(xg, spec, off), wg[(...,) + off])
    slack = 1 + gamma(spec.terms + 1, F64_U)
    if np.iscomplexobj(problem.x):
        slack *= 1 + 4 * F64_U
    return ungroup(m) * slack


def _sum_products(problem: ConvProblem, dtype: type) -> np.ndarray:
    spec = problem.spec
    xg, wg = grouped_input(problem.x, spec, dtype), grouped_weight(problem.w, spec, dtype)
    y: np.ndarray = np.zeros(_grouped_shape(spec), dtype=dtype)
    for off in kernel_offsets(spec):
        y += np.einsum("ngc...,goc->ngo...", window(xg, spec, off), wg[(...,) + off])
    return ungroup(y)


def _accumulate(
    spec: ConvSpec, xg: np.ndarray, wg: np.ndarray, hi: np.ndarray, lo: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """hi + lo plus every product of the real arrays xg ⋆ wg: TwoProduct, then TwoSum into hi."""
    expand = (slice(None), slice(None), None)  # (N, G, *out) -> (N, G, 1, *out)
    for off in kernel_offsets(spec):
        xs = window(xg, spec, off)
        for c in range(xs.shape[2]):
            a = xs[:, :, c][expand]
            b = wg[:, :, c][(None, ...) + off].reshape((1, spec.groups, -1) + (1,) * spec.rank)
            p, pe = two_product(a, b)
            hi, se = two_sum(hi, p)
            lo = lo + se + pe
    return hi, lo


def _double_double(spec: ConvSpec, pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Σ over `pairs` of the real convolutions x ⋆ w, as a double-double (hi, lo)."""
    hi, lo = np.zeros(_grouped_shape(spec)), np.zeros(_grouped_shape(spec))
    for x, w in pairs:
        hi, lo = _accumulate(spec, grouped_input(x, spec, np.float64), grouped_weight(w, spec, np.float64), hi, lo)
    hi, lo = two_sum(hi, lo)
    return ungroup(hi), ungroup(lo)


def _complex_double_double(problem: ConvProblem) -> tuple[np.ndarray, np.ndarray]:
    spec = problem.spec
    a, b = problem.x.real, problem.x.imag
    c, d = problem.w.real, problem.w.imag
    re_hi, re_lo = _double_double(spec, [(a, c), (b, -d)])
    im_hi, im_lo = _double_double(spec, [(a, d), (b, c)])
    return re_hi + 1j * im_hi, re_lo + 1j * im_lo


def elementwise(problem: ConvProblem) -> ReferenceResult:
    spec = problem.spec
    info = dtype_info(spec.dtype)
    mag = magnitude(problem)
    if not info.is_float:
        y = _sum_products(problem, np.int64)
        return ReferenceResult(y, None, mag, np.zeros(y.shape), "elementwise")
    if spec.dtype == "float64":
        hi, lo = _double_double(spec, [(problem.x, problem.w)])
        # Compensated dot product (Ogita, Rump & Oishi 2005): error ≤ γ_{2K}(u)²·M before the last TwoSum.
        bound = gamma(2 * spec.terms, F64_U) ** 2 * mag + 2.0**-1074
        return ReferenceResult(hi, lo, mag, bound, "elementwise")
    if spec.dtype == "complex128":
        hi, lo = _complex_double_double(problem)
        # Each component is a compensated sum of 2K products: γ_{4K}(u)² times its own Σ|products|,
        # and the two components' Σ|products| together are at most √2·M (see crosscheck.core.bounds).
        bound = math.sqrt(2) * gamma(4 * spec.terms, F64_U) ** 2 * mag + 2.0**-1073
        return ReferenceResult(hi, lo, mag, bound, "elementwise")
    if info.is_complex:
        # complex64: every real product is exact in float64; complex128 arithmetic rounds the sums
        # only, in whatever order einsum picks: the any-order complex bound in float64 covers it.
        y = _sum_products(problem, np.complex128)
        return ReferenceResult(
            y, None, mag, accumulation_factor(spec.terms, F64_U, complex_method="conventional") * mag, "elementwise"
        )
    y = _sum_products(problem, np.float64)
    # Products of ≤24-bit significands are exact in float64; only the K additions round.
    bound = gamma(spec.terms, F64_U) * mag
    return ReferenceResult(y, None, mag, bound, "elementwise")
