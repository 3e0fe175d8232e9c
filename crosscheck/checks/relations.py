"""Two backend computations related by an identity, compared within the sum of their own bounds.

A metamorphic relation says that two convolutions (or a function of several) have the same exact
value. Each computed side is within its own bound of its own exact value (the bound of section 3,
from the reference of its own problem), so by the triangle inequality the two sides may differ by
at most the sum of those bounds: the same rule as pairwise agreement (crosscheck.run.pairwise), with
no guessed tolerance. On exact-mode values every side's bound is zero, so the relation must hold
bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from crosscheck.backends.base import Backend
from crosscheck.checks.forward import bound_for
from crosscheck.core.dtypes import dtype_info
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.reference import ReferenceResult, reference
from crosscheck.reference.elementwise import magnitude, two_sum
from crosscheck.reference.geometry import work_dtype


@dataclass(frozen=True)
class Side:
    """One computed convolution: its problem, the backend's output in float64 (complex128) and the
    bound on its distance from the exact value."""

    problem: ConvProblem
    y: np.ndarray
    bound: np.ndarray


@dataclass(frozen=True)
class Relation:
    """What one comparison found: the largest |a − b| / allowed, and whether allowed was all zeros."""

    max_ratio: float
    exact: bool


class RelationBroken(AssertionError):
    """The two sides differ by more than allowed; the message is assert_close-style."""


def still_exact(problem: ConvProblem) -> bool:
    """Whether a problem derived from exact-mode values is still exact: integer values (both parts
    for complex) and every partial sum representable. Those sums are bounded by M (for complex, a
    component's partial sums and the 3M method's Σ(a+b)(c+d) by 2M), which must fit the significand."""
    info = dtype_info(problem.spec.dtype)
    if not info.is_float:
        return True
    parts = [a.astype(np.complex128 if info.is_complex else np.float64) for a in (problem.x, problem.w)]
    if any(np.any(np.real(p) != np.round(np.real(p))) or np.any(np.imag(p) != np.round(np.imag(p))) for p in parts):
        return False
    m = float(np.max(magnitude(problem), initial=0.0)) * (2 if info.is_complex else 1)
    return m <= 2.0**info.significand_bits


def derived(base: ConvProblem, spec: ConvSpec, x: np.ndarray, w: np.ndarray, **meta: object) -> ConvProblem:
    """A problem derived from `base` (same seed, for the record), exact only if it really is."""
    info = dtype_info(spec.dtype)
    p = replace(base, spec=spec, x=np.ascontiguousarray(x, info.numpy), w=np.ascontiguousarray(w, info.numpy))
    p = replace(p, meta={**base.meta, **meta})
    if p.values == "exact" and not still_exact(p):
        p = replace(p, values="uniform")  # values stay as they are; only the bit-for-bit claim goes
    return p


def side(backend: Backend, problem: ConvProblem, y: np.ndarray, ref: ReferenceResult | None = None) -> Side:
    """The backend's output `y` for `problem` with the bound it must satisfy (`ref`: the problem's reference, when
    the caller has it)."""
    caps = backend.capabilities()
    ref = ref if ref is not None else reference(problem)
    dtype = problem.spec.dtype
    bound = bound_for(problem, ref, caps.u_acc(dtype), caps.bound, complex_method=caps.complex_method)
    return Side(problem, np.asarray(y, dtype=work_dtype(problem.x)), bound)


def exact_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s = fl(a + b) and |a + b − s| (exact; per component, as a modulus, for complex)."""
    if np.iscomplexobj(a) or np.iscomplexobj(b):
        a, b = np.asarray(a, np.complex128), np.asarray(b, np.complex128)
        re, re_err = two_sum(a.real, b.real)
        im, im_err = two_sum(a.imag, b.imag)
        return re + 1j * im, np.hypot(re_err, im_err) * (1 + 2.0**-52)
    s, err = two_sum(np.asarray(a, np.float64), np.asarray(b, np.float64))
    return s, np.abs(err)


def relate(a: np.ndarray, b: np.ndarray, allowed: np.ndarray, what: str) -> Relation:
    """Check |a − b| ≤ allowed element-wise; raise RelationBroken naming `what` otherwise."""
    err = np.abs(a - b)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(allowed > 0, err / allowed, np.where(err > 0, np.inf, 0.0))
    ratio = np.where(np.isnan(err), np.inf, ratio)
    exact = not np.any(allowed > 0)
    if ratio.size == 0:
        return Relation(0.0, exact)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape))
    bad = int(np.sum(~(err <= allowed)))
    if bad:
        limit = "equal (exact-mode values: up to 0 allowed)" if exact else "within the sum of their bounds"
        raise RelationBroken(
            f"{what}: the two sides are not {limit}\n"
            f"Mismatched elements: {bad} / {err.size} ({100 * bad / err.size:.1f}%)\n"
            f"Greatest error-to-allowed ratio: {float(ratio[worst]):.4g} at index {worst}\n"
            f"  one side {a[worst]!r}, other side {b[worst]!r}, |difference| {float(err[worst]):.6g}, "
            f"allowed {float(allowed[worst]):.6g}"
        )
    return Relation(float(ratio[worst]), exact)
