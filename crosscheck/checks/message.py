"""The one failure message of every value comparison (forward, backward, transposed), and the per-element
judgement it reports on.

It follows `torch.testing.assert_close` (torch/testing/_comparison.py: one mismatch-message builder, the location
appended once): how many elements mismatched, the worst one with its index, its error, what was allowed and the
ratio between them, then the bound's own line (each comparison knows its error model), the worst element's actual
and expected values, and `ConvProblem.where()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crosscheck.core.dtypes import DTypeInfo, ulp
from crosscheck.core.problem import ConvProblem
from crosscheck.reference.result import ReferenceResult


def mismatch(what: str, arr: np.ndarray, shape: tuple[int, ...], dtype: str, info: DTypeInfo) -> tuple[str, str]:
    """('shape' | 'dtype', message) where `arr` does not have the expected shape or dtype, else ('', '')."""
    prefix = f"{what}: " if what else ""
    if arr.shape != tuple(shape):
        return "shape", f"{prefix}Shape mismatch: expected {tuple(shape)}, got {arr.shape}"
    if arr.dtype != info.numpy:
        return "dtype", f"{prefix}Dtype mismatch: expected {dtype}, got {arr.dtype}"
    return "", ""


@dataclass(frozen=True)
class Judged:
    """Each element's error against its bound: non-finite results count as infinitely wrong."""

    err: np.ndarray
    bound: np.ndarray
    ratio: np.ndarray
    worst: tuple[int, ...]  # () for an empty result
    mismatched: int
    max_ulp: float

    @property
    def max_ratio(self) -> float:
        return float(self.ratio[self.worst]) if self.ratio.size else 0.0


def judge(arr: np.ndarray, ref: ReferenceResult, bound: np.ndarray, out: str, info: DTypeInfo) -> Judged:
    err = ref.distance(arr)
    if not info.is_float:
        finite = np.ones(arr.shape, bool)
    else:  # a NumPy float or complex array, or an extension dtype (bfloat16) NumPy's isfinite does not know
        finite = np.isfinite(arr) if arr.dtype.kind in "fc" else np.isfinite(arr.astype(np.float64))
    err = np.where(finite, err, np.inf)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(bound > 0, err / bound, np.where(err > 0, np.inf, 0.0))
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape)) if ratio.size else ()
    # ULP error is only meaningful where the exact value is a normal number; near zero it explodes.
    normal = np.abs(ref.approx) >= max(info.smallest_normal, 1e-300)
    ulps = np.where(normal & np.isfinite(err), err, 0.0) / ulp(ref.approx, out)
    return Judged(err, bound, ratio, worst, int((err > bound).sum()), float(np.max(ulps, initial=0.0)))


def expected(ref: ReferenceResult, worst: tuple[int, ...], info: DTypeInfo) -> float | complex | int:
    """The exact value at `worst` as the message shows it."""
    if not info.is_float:
        return int(ref.value[worst])
    value = ref.approx[worst]
    return complex(value) if np.iscomplexobj(value) else float(value)


def values_message(
    what: str,
    problem: ConvProblem,
    actual: np.ndarray,
    ref: ReferenceResult,
    judged: Judged,
    info: DTypeInfo,
    exact: bool,
    bound_line: str,
) -> str:
    """The message of a value mismatch; `what` names the result ('' for the convolution's output) and
    `bound_line` explains the worst element's bound in the comparison's own error model (unused for exact results)."""
    worst, err = judged.worst, judged.err
    total = actual.size
    verdict = f"alues are not {'equal' if exact else 'within the error bound'}!"
    lines = [
        f"{what}: v{verdict}" if what else f"V{verdict}",
        f"Mismatched elements: {judged.mismatched} / {total} ({100 * judged.mismatched / total:.1f}%)",
    ]
    if exact:
        lines.append(
            f"Greatest absolute difference: {err[worst]:.6g} at index {worst} "
            f"(exact-mode inputs: every partial sum is representable, so up to 0 allowed)"
        )
    else:
        with np.errstate(over="ignore"):
            ratio = err[worst] / judged.bound[worst]
        lines.append(f"Greatest error-to-bound ratio: {ratio:.4g} at index {worst} (up to 1 allowed)")
        lines.append(bound_line)
    want = expected(ref, worst, info)
    lines.append(
        f"  actual {actual[worst].item()!r}, expected {want!r} (reference: {ref.method}), |error| {err[worst]:.6g}"
    )
    lines.append(problem.where())
    return "\n".join(lines)
