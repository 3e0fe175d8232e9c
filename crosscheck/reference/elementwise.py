"""The default reference: the element-wise-sum definition, vectorised over output positions.

    y[n, o, m] = Σ_c Σ_u x_pad[n, g·Cg + c, m·stride + u·dilation] · w[o, c, u]

One term (c, u) at a time is multiplied into every output position at once. Float32 and narrower
values multiply exactly in float64, so the float64 sum is off by at most γ_K(2⁻⁵³)·M. Float64
inputs get error-free products (Dekker's TwoProduct) accumulated with TwoSum: a double-double
result whose error is O(K·u²)·M, far below the float64 bound it is used to judge.
"""

from __future__ import annotations

import numpy as np

from crosscheck.bounds import F64_U, gamma
from crosscheck.dtypes import dtype_info
from crosscheck.problem import ConvProblem
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


def _terms(problem: ConvProblem, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    spec = problem.spec
    return grouped_input(problem.x, spec, dtype), grouped_weight(problem.w, spec, dtype)


def magnitude(problem: ConvProblem) -> np.ndarray:
    """M = |x| ⋆ |w| per output element, rounded up past its own float64 error."""
    spec = problem.spec
    xg, wg = _terms(problem, np.float64)
    xg, wg = np.abs(xg), np.abs(wg)
    m = np.zeros((spec.batch, spec.groups, spec.out_channels // spec.groups, *spec.out_size))
    for off in kernel_offsets(spec):
        m += np.einsum("ngc...,goc->ngo...", window(xg, spec, off), wg[(...,) + off])
    return ungroup(m) * (1 + gamma(spec.terms + 1, F64_U))


def _sum_products(problem: ConvProblem, dtype: type) -> np.ndarray:
    spec = problem.spec
    xg, wg = _terms(problem, dtype)
    y: np.ndarray = np.zeros((spec.batch, spec.groups, spec.out_channels // spec.groups, *spec.out_size), dtype=dtype)
    for off in kernel_offsets(spec):
        y += np.einsum("ngc...,goc->ngo...", window(xg, spec, off), wg[(...,) + off])
    return ungroup(y)


def _double_double(problem: ConvProblem) -> tuple[np.ndarray, np.ndarray]:
    spec = problem.spec
    xg, wg = _terms(problem, np.float64)
    shape = (spec.batch, spec.groups, spec.out_channels // spec.groups, *spec.out_size)
    hi = np.zeros(shape)
    lo = np.zeros(shape)
    expand = (slice(None), slice(None), None)  # (N, G, *out) -> (N, G, 1, *out)
    for off in kernel_offsets(spec):
        xs = window(xg, spec, off)
        for c in range(xs.shape[2]):
            a = xs[:, :, c][expand]
            b = wg[:, :, c][(None, ...) + off].reshape((1, spec.groups, -1) + (1,) * spec.rank)
            p, pe = two_product(a, b)
            hi, se = two_sum(hi, p)
            lo += se + pe
    hi, lo = two_sum(hi, lo)
    return ungroup(hi), ungroup(lo)


def elementwise(problem: ConvProblem) -> ReferenceResult:
    spec = problem.spec
    info = dtype_info(spec.dtype)
    mag = magnitude(problem)
    if not info.is_float:
        y = _sum_products(problem, np.int64)
        return ReferenceResult(y, None, mag, np.zeros(y.shape), "elementwise")
    if spec.dtype == "float64":
        hi, lo = _double_double(problem)
        # Compensated dot product (Ogita, Rump & Oishi 2005): error ≤ γ_{2K}(u)²·M before the last TwoSum.
        bound = gamma(2 * spec.terms, F64_U) ** 2 * mag + 2.0**-1074
        return ReferenceResult(hi, lo, mag, bound, "elementwise")
    y = _sum_products(problem, np.float64)
    # Products of ≤24-bit significands are exact in float64; only the K additions round.
    bound = gamma(spec.terms, F64_U) * mag
    return ReferenceResult(y, None, mag, bound, "elementwise")
