"""Backward-pass results against their references, and the adjoint identity within its bound.

A gradient or a transposed convolution is a sum of products like the forward convolution, so the
bound is the forward one (`crosscheck.core.bounds`, the one error model) with that result's own K per
element and its own M:

    |r_backend − r_exact| ≤ u_out·|r_exact| + (1 + u_out)·γ_K(u_acc)·M + λ_out

K counts the products that can be nonzero in each element (C_out/groups times the taps reaching an
input position for grad_x and convᵀ; the batch times the real input elements a tap reads for
grad_w). The checks go shape first, then dtype, then values, as for the forward pass.
"""

from __future__ import annotations

import math

import numpy as np

from crosscheck.checks import message
from crosscheck.checks.forward import Verdict, bound_for
from crosscheck.core.bounds import F64_U, elementwise_bound, gamma_array
from crosscheck.core.dtypes import dtype_info
from crosscheck.core.problem import ConvProblem
from crosscheck.reference.elementwise import two_product
from crosscheck.reference.result import ReferenceResult


def result_bound(dtype: str, ref: ReferenceResult, terms: np.ndarray, u_acc: float, exact: bool) -> np.ndarray:
    """What each element of a backward result may be off by (0 on exact-mode inputs)."""
    if exact:
        return np.zeros(ref.value.shape)
    info = dtype_info(dtype)
    b = elementwise_bound(ref.approx, ref.magnitude, terms, info.unit_roundoff, u_acc, info.smallest_normal)
    # The reference itself is only known to within its own bound.
    return np.asarray(b + ref.error_bound, dtype=np.float64)


def compare_result(
    what: str,
    problem: ConvProblem,
    actual: object,
    ref: ReferenceResult,
    terms: np.ndarray,
    u_acc: float,
    exact: bool,
) -> Verdict:
    """`actual` (the problem's dtype, ref's shape) against `ref`; `what` names the result in messages."""
    dtype = problem.spec.dtype
    info = dtype_info(dtype)
    arr = np.asarray(actual)
    kind, text = message.mismatch(what, arr, ref.value.shape, dtype, info)
    if kind:
        return Verdict(False, kind, text)
    terms = np.broadcast_to(terms, arr.shape)
    bound = result_bound(dtype, ref, terms, u_acc, exact)
    judged = message.judge(arr, ref, bound, dtype, info)
    if not judged.ratio.size:
        return Verdict(True, "values", "", 0, 0, 0.0, 0.0, 0.0, exact)
    worst = judged.worst
    scale = 0.0
    if bound[worst] > 0:
        scale = float(math.sqrt(terms[worst]) * u_acc * ref.magnitude[worst] / bound[worst])
    passed = judged.mismatched == 0
    text = ""
    if not passed:
        want = message.expected(ref, worst, info)
        g = float(gamma_array(terms[worst], u_acc)) if not exact else 0.0
        line = (
            ""
            if exact
            else (
                f"  bound {bound[worst]:.6g} = u_out·|r| {info.unit_roundoff * abs(want):.3g} + γ_K·M "
                f"{g * ref.magnitude[worst]:.3g} (K={int(terms[worst])}, u_acc=2^{np.log2(u_acc):.0f},"
                f" M={ref.magnitude[worst]:.6g})"
            )
        )
        text = message.values_message(what, problem, arr, ref, judged, info, exact, line)
    return Verdict(
        passed, "values", text, judged.mismatched, int(arr.size), judged.max_ratio, judged.max_ulp, scale, exact
    )


def exact_dot(a: np.ndarray, b: np.ndarray) -> float:
    """⟨a, b⟩ correctly rounded to float64: error-free products summed by math.fsum (ints: exact)."""
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return float(sum(int(v) for v in (a.astype(np.int64) * b.astype(np.int64)).ravel()))
    p, e = two_product(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())
    return math.fsum(np.concatenate([p, e]).tolist())


def adjoint_verdict(
    problem: ConvProblem,
    g: np.ndarray,
    y: np.ndarray,
    y_ref: ReferenceResult,
    u_acc_forward: float,
    z: np.ndarray,
    z_ref: ReferenceResult,
    z_terms: np.ndarray,
    u_acc_transposed: float,
    forward_bound_kind: str = "elementwise",
) -> Verdict:
    """⟨conv(x, w), g⟩ = ⟨x, convᵀ(g, w)⟩ for the backend's own conv (y) and convᵀ (z).

    The two sides are equal in exact arithmetic, so they may differ by at most what each result may be
    off by, weighted by what it is multiplied with: Σ|g|·B_y + Σ|x|·B_z, plus the rounding of the two
    inner products themselves (each correctly rounded to float64).
    """
    spec = problem.spec
    if y.shape != spec.y_shape:
        return Verdict(False, "shape", f"conv(x, w): Shape mismatch: expected {spec.y_shape}, got {y.shape}")
    if z.shape != spec.x_shape:
        return Verdict(False, "shape", f"convᵀ(g, w): Shape mismatch: expected {spec.x_shape}, got {z.shape}")
    exact = problem.exact
    b_y = bound_for(problem, y_ref, u_acc_forward, forward_bound_kind)
    b_z = result_bound(spec.dtype, z_ref, np.broadcast_to(z_terms, z.shape), u_acc_transposed, exact)
    ag, ax = np.abs(g.astype(np.float64)), np.abs(problem.x.astype(np.float64))
    weighted = float(np.sum(b_y * ag) + np.sum(b_z * ax))
    count = b_y.size + b_z.size
    lhs, rhs = exact_dot(y, g), exact_dot(problem.x, z)
    # The float64 sums of non-negative terms above are off by at most γ_count; lhs and rhs, each correctly
    # rounded, by u of their exact values (2u of the computed ones covers that).
    allowed = weighted * (1 + float(gamma_array(np.asarray(count + 2), F64_U))) + 2 * F64_U * (abs(lhs) + abs(rhs))
    diff = abs(lhs - rhs)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = diff / allowed if allowed > 0 else (math.inf if diff > 0 else 0.0)
    if not math.isfinite(lhs) or not math.isfinite(rhs):
        ratio = math.inf
    passed = ratio <= 1
    text = ""
    if not passed:
        text = "\n".join(
            [
                "⟨conv(x, w), g⟩ ≠ ⟨x, convᵀ(g, w)⟩: the transposed convolution is not the adjoint of the convolution!",
                f"  ⟨conv(x, w), g⟩ = {lhs!r}, ⟨x, convᵀ(g, w)⟩ = {rhs!r}, |difference| {diff:.6g}",
                f"  allowed {allowed:.6g} = Σ|g|·B_conv + Σ|x|·B_convᵀ (+ the inner products' own rounding);"
                f" ratio {ratio:.4g} (up to 1 allowed)",
                problem.where(),
            ]
        )
    return Verdict(passed, "values", text, 0 if passed else 1, 1, float(ratio), 0.0, 0.0, exact)
