"""Backend output against the reference: shape first, then dtype, then every value against its bound.

The failure message follows `torch.testing.assert_close`: how many elements mismatched, the worst
one with its index, its error, what was allowed, and the ratio between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crosscheck.bounds import elementwise_bound, gamma, probabilistic_scale
from crosscheck.dtypes import default_accumulator, dtype_info, ulp
from crosscheck.problem import ConvProblem
from crosscheck.reference import ReferenceResult, reference
from crosscheck.reference.fft import normwise_bound

BOUND_KINDS = ("elementwise", "normwise")


@dataclass(frozen=True)
class Verdict:
    passed: bool
    stage: str  # "values" when the values were compared, else "shape" or "dtype"
    message: str
    mismatched: int = 0
    total: int = 0
    max_ratio: float = 0.0  # largest |error| / bound; exact comparisons report 0 or inf
    max_ulp: float = 0.0
    expected_ratio: float = 0.0  # the √K·u scale divided by the bound, at the worst element
    exact: bool = False


def bound_for(problem: ConvProblem, ref: ReferenceResult, u_acc: float, kind: str = "elementwise") -> np.ndarray:
    """What each output element may be off by (0 where the comparison must be exact)."""
    spec = problem.spec
    info = dtype_info(spec.dtype)
    if problem.exact and kind == "elementwise":
        return np.zeros(ref.value.shape)
    if kind == "normwise":
        b = normwise_bound(problem, u_acc) + info.unit_roundoff * np.abs(ref.approx)
    else:
        b = elementwise_bound(ref.approx, ref.magnitude, spec.terms, info.unit_roundoff, u_acc, info.smallest_normal)
    # The reference is itself only known to within its own bound.
    return np.asarray(b + ref.error_bound, dtype=np.float64)


def accumulator_roundoff(dtype: str, accumulator: str | None = None) -> float:
    return dtype_info(accumulator or default_accumulator(dtype)).unit_roundoff


def compare(
    problem: ConvProblem,
    actual: object,
    ref: ReferenceResult | None = None,
    *,
    u_acc: float | None = None,
    bound_kind: str = "elementwise",
) -> Verdict:
    """Check `actual` (canonical layout, the problem's dtype) against the reference and its bound."""
    spec = problem.spec
    info = dtype_info(spec.dtype)
    arr = np.asarray(actual)
    if arr.shape != spec.y_shape:
        return Verdict(False, "shape", f"Shape mismatch: expected {spec.y_shape}, got {arr.shape}")
    if arr.dtype != info.numpy:
        return Verdict(False, "dtype", f"Dtype mismatch: expected {spec.dtype}, got {arr.dtype}")
    ref = ref if ref is not None else reference(problem)
    if u_acc is None:
        u_acc = accumulator_roundoff(spec.dtype)
    bound = bound_for(problem, ref, u_acc, bound_kind)
    err = ref.distance(arr)
    finite = np.isfinite(arr.astype(np.float64)) if info.is_float else np.ones(arr.shape, bool)
    err = np.where(finite, err, np.inf)
    bad = err > bound
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(bound > 0, err / bound, np.where(err > 0, np.inf, 0.0))
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape)) if ratio.size else ()
    # ULP error is only meaningful where the exact value is a normal number; near zero it explodes.
    normal = np.abs(ref.approx) >= max(info.smallest_normal, 1e-300)
    ulps = np.where(normal & np.isfinite(err), err, 0.0) / ulp(ref.approx, spec.dtype)
    max_ratio = float(ratio[worst]) if ratio.size else 0.0
    scale = 0.0
    if ratio.size and bound[worst] > 0:
        scale = float(probabilistic_scale(spec.terms, u_acc) * ref.magnitude[worst] / bound[worst])
    mismatched = int(bad.sum())
    exact = bool(problem.exact and bound_kind == "elementwise")
    passed = mismatched == 0
    message = "" if passed else _message(problem, arr, ref, err, bound, mismatched, worst, u_acc, exact, bound_kind)
    return Verdict(
        passed,
        "values",
        message,
        mismatched,
        int(arr.size),
        max_ratio,
        float(np.max(ulps, initial=0.0)),
        scale,
        exact,
    )


def _message(
    problem: ConvProblem,
    actual: np.ndarray,
    ref: ReferenceResult,
    err: np.ndarray,
    bound: np.ndarray,
    mismatched: int,
    worst: tuple[int, ...],
    u_acc: float,
    exact: bool,
    bound_kind: str,
) -> str:
    spec = problem.spec
    info = dtype_info(spec.dtype)
    total = actual.size
    idx = tuple(int(i) for i in worst)
    got = actual[worst].item()
    want = float(ref.approx[worst]) if info.is_float else int(ref.value[worst])
    lines = [
        f"Values are not {'equal' if exact else 'within the error bound'}!",
        f"Mismatched elements: {mismatched} / {total} ({100 * mismatched / total:.1f}%)",
    ]
    if exact:
        lines.append(
            f"Greatest absolute difference: {err[worst]:.6g} at index {idx} "
            f"(exact-mode inputs: every partial sum is representable, so up to 0 allowed)"
        )
    else:
        with np.errstate(over="ignore"):
            ratio = err[worst] / bound[worst]
        lines.append(f"Greatest error-to-bound ratio: {ratio:.4g} at index {idx} (up to 1 allowed)")
        if bound_kind == "elementwise":
            g = gamma(spec.terms, u_acc)
            lines.append(
                f"  bound {bound[worst]:.6g} = u_out·|y| {info.unit_roundoff * abs(want):.3g}"
                f" + γ_K·M {g * ref.magnitude[worst]:.3g} (K={spec.terms}, u_acc=2^{np.log2(u_acc):.0f},"
                f" M={ref.magnitude[worst]:.6g})"
            )
        else:
            lines.append(f"  normwise bound {bound[worst]:.6g} (FFT-based algorithm, u_acc=2^{np.log2(u_acc):.0f})")
    lines.append(f"  actual {got!r}, expected {want!r} (reference: {ref.method}), |error| {err[worst]:.6g}")
    lines.append(f"Problem: {spec.describe()} seed={problem.seed} values={problem.values}")
    return "\n".join(lines)
