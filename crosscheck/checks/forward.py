"""Backend output against the reference: shape first, then dtype, then every value against its bound.

The failure message follows `torch.testing.assert_close`: how many elements mismatched, the worst
one with its index, its error, what was allowed, and the ratio between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crosscheck.checks import accuracy, message
from crosscheck.core.bounds import accumulation_factor, elementwise_bound, probabilistic_scale
from crosscheck.core.dtypes import DTypeInfo, default_accumulator, dtype_info
from crosscheck.core.problem import ConvProblem
from crosscheck.reference import ReferenceResult, reference
from crosscheck.reference.fft import normwise_bound

BOUND_KINDS = accuracy.CHOICES  # the accuracy models (crosscheck.checks.accuracy); "winograd:M" for one tile size


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


def is_exact(
    problem: ConvProblem, ref: ReferenceResult, kind: str = "elementwise", rounded_to: str | None = None
) -> bool:
    """Must the backend match bit for bit? Exact-mode values under an element-wise bound, and (where
    the result is rounded to a narrower dtype `rounded_to`, as in a reduced-precision mode) every
    partial sum, at most M, representable in that dtype's significand."""
    if not problem.exact:
        return False
    if kind != "elementwise":
        return not dtype_info(problem.spec.dtype).is_float  # integers are exact under every accuracy model
    out = dtype_info(rounded_to or problem.spec.dtype)
    if not out.is_float or out.significand_bits >= dtype_info(problem.spec.dtype).significand_bits:
        return True
    return float(np.max(ref.magnitude, initial=0.0)) <= 2.0**out.significand_bits


def bound_for(
    problem: ConvProblem,
    ref: ReferenceResult,
    u_acc: float,
    kind: str = "elementwise",
    *,
    complex_method: str = "conventional",
    u_in: float = 0.0,
    rounded_to: str | None = None,
) -> np.ndarray:
    """What each output element may be off by (0 where the comparison must be exact).

    `complex_method` applies to complex dtypes only (see crosscheck.core.bounds); `u_in` > 0 models inputs
    rounded before they are multiplied, and `rounded_to` a result rounded to another dtype than the
    problem's (both describe reduced-precision modes).
    """
    spec = problem.spec
    info = dtype_info(spec.dtype)
    out = dtype_info(rounded_to or spec.dtype)
    if is_exact(problem, ref, kind, rounded_to):
        return np.zeros(ref.value.shape)
    model = accuracy.family(kind)
    tiny = 2 * out.smallest_normal if info.is_complex else out.smallest_normal
    if model == "normwise":
        b = _fast_bound(normwise_bound(problem, u_acc), ref, out, tiny)
    else:
        b = elementwise_bound(
            ref.approx,
            ref.magnitude,
            spec.terms,
            out.unit_roundoff,
            u_acc,
            out.smallest_normal,
            u_in=u_in,
            complex_method=complex_method if info.is_complex else None,
        )
    if model == "winograd":
        # A Winograd kernel runs the shapes it has no tiles for directly: either bound may be the one that holds.
        b = np.maximum(b, _fast_bound(accuracy.winograd_error(problem, u_acc, kind), ref, out, tiny))
    # The reference is itself only known to within its own bound.
    return np.asarray(b + ref.error_bound, dtype=np.float64)


def _fast_bound(phi: np.ndarray, ref: ReferenceResult, out: DTypeInfo, tiny: float) -> np.ndarray:
    """A fast algorithm's error φ before the result is rounded to the output dtype, and that rounding as in the
    element-wise bound: u_out·|y| + (1 + u_out)·φ + λ_out."""
    return np.asarray(out.unit_roundoff * np.abs(ref.approx) + (1 + out.unit_roundoff) * phi + tiny)


def accumulator_roundoff(dtype: str, accumulator: str | None = None) -> float:
    return dtype_info(accumulator or default_accumulator(dtype)).unit_roundoff


def compare(
    problem: ConvProblem,
    actual: object,
    ref: ReferenceResult | None = None,
    *,
    u_acc: float | None = None,
    bound_kind: str = "elementwise",
    complex_method: str = "conventional",
    u_in: float = 0.0,
    out_dtype: str | None = None,
    rounded_to: str | None = None,
) -> Verdict:
    """Check `actual` (canonical layout, in the problem's dtype or `out_dtype`) against the reference
    and its bound (`bound_for` explains the keywords; `rounded_to` defaults to `out_dtype`)."""
    spec = problem.spec
    out_name = out_dtype or spec.dtype
    rounded_to = rounded_to or out_dtype
    info = dtype_info(out_name)
    arr = np.asarray(actual)
    kind, text = message.mismatch("", arr, spec.y_shape, out_name, info)
    if kind:
        return Verdict(False, kind, text)
    ref = ref if ref is not None else reference(problem)
    if u_acc is None:
        u_acc = accumulator_roundoff(spec.dtype)
    bound = bound_for(problem, ref, u_acc, bound_kind, complex_method=complex_method, u_in=u_in, rounded_to=rounded_to)
    judged = message.judge(arr, ref, bound, out_name, info)
    worst = judged.worst
    scale = 0.0
    if judged.ratio.size and bound[worst] > 0:
        scale = float(probabilistic_scale(spec.terms, u_acc) * ref.magnitude[worst] / bound[worst])
    exact = is_exact(problem, ref, bound_kind, rounded_to)
    passed = judged.mismatched == 0
    text = ""
    if not passed:
        method = complex_method if dtype_info(spec.dtype).is_complex else None
        model = BoundModel(u_acc, bound_kind, method, u_in, dtype_info(rounded_to or out_name))
        line = "" if exact else _bound_line(problem, ref, judged, model)
        text = message.values_message("", problem, arr, ref, judged, model.out, exact, line)
        if accuracy.family(bound_kind) == "elementwise" and info.is_float:
            text += _normwise_hint(problem, ref, judged.err, u_acc, rounded_to)
    return Verdict(
        passed, "values", text, judged.mismatched, int(arr.size), judged.max_ratio, judged.max_ulp, scale, exact
    )


NORMWISE_HINT = (
    "\nEvery element is within the normwise bound of an FFT-style algorithm (largest error/bound {ratio:.3g}): "
    "if the function computes by an FFT, judge it by that accuracy model with --accuracy normwise "
    "(verify(..., accuracy='normwise'); docs/accuracy.md)."
)


def _normwise_hint(
    problem: ConvProblem, ref: ReferenceResult, err: np.ndarray, u_acc: float, rounded_to: str | None
) -> str:
    """The hint for an element-wise failure that the normwise model would pass, else ''."""
    normwise = bound_for(problem, ref, u_acc, "normwise", rounded_to=rounded_to)
    if not np.all(err <= normwise):
        return ""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.max(np.where(normwise > 0, err / normwise, 0.0), initial=0.0))
    return NORMWISE_HINT.format(ratio=ratio)


@dataclass(frozen=True)
class BoundModel:
    """The parameters behind a bound, for the failure message."""

    u_acc: float
    kind: str
    complex_method: str | None
    u_in: float
    out: DTypeInfo


def _bound_line(problem: ConvProblem, ref: ReferenceResult, judged: message.Judged, model: BoundModel) -> str:
    """The worst element's bound in the accuracy model's terms."""
    worst, bound = judged.worst, judged.bound
    u_acc = model.u_acc
    if model.kind != "elementwise":
        return (
            f"  {model.kind} bound {bound[worst]:.6g} ({accuracy.describe(model.kind)}, u_acc=2^{np.log2(u_acc):.0f})"
        )
    want = message.expected(ref, worst, model.out)
    g = accumulation_factor(problem.spec.terms, u_acc, u_in=model.u_in, complex_method=model.complex_method)
    name = "γ_K·M" if not (model.u_in or model.complex_method) else "φ·M"
    extra = f", u_in=2^{np.log2(model.u_in):.0f}" if model.u_in else ""
    extra += f", complex {model.complex_method}" if model.complex_method else ""
    return (
        f"  bound {bound[worst]:.6g} = u_out·|y| {model.out.unit_roundoff * abs(want):.3g}"
        f" + {name} {g * ref.magnitude[worst]:.3g} (K={problem.spec.terms}, u_acc=2^{np.log2(u_acc):.0f}{extra},"
        f" M={ref.magnitude[worst]:.6g})"
    )
