"""The dot-product view: each output element is the dot product of its flattened window with the
flattened filter, so the whole convolution is one matrix product (im2col)."""

from __future__ import annotations

import numpy as np

from crosscheck.bounds import F64_U, accumulation_factor, gamma
from crosscheck.problem import ConvProblem
from crosscheck.reference.geometry import grouped_input, grouped_weight, kernel_offsets, ungroup, window
from crosscheck.reference.result import ReferenceResult


def columns(problem: ConvProblem) -> np.ndarray:
    """The im2col matrix: (N, G, C_in/G · prod(kernel), prod(out_size)), one column per window."""
    spec = problem.spec
    xg = grouped_input(problem.x, spec)
    taps = [window(xg, spec, off) for off in kernel_offsets(spec)]
    cols = np.stack(taps, axis=3)  # (N, G, Cg, taps, *out): the same c-major order as w.reshape
    n, g = cols.shape[:2]
    return cols.reshape(n, g, spec.terms, -1)


def im2col(problem: ConvProblem) -> ReferenceResult:
    spec = problem.spec
    cols = columns(problem)
    rows = grouped_weight(problem.w, spec).reshape(spec.groups, spec.out_channels // spec.groups, spec.terms)
    y = np.einsum("gok,ngkp->ngop", rows, cols, optimize=True)
    m = np.einsum("gok,ngkp->ngop", np.abs(rows), np.abs(cols), optimize=True)
    shape = (spec.batch, spec.groups, spec.out_channels // spec.groups, *spec.out_size)
    slack = (1 + gamma(spec.terms + 1, F64_U)) * (1 + 4 * F64_U if np.iscomplexobj(cols) else 1)
    magnitude = ungroup(m.reshape(shape)) * slack
    # A float64 dot product of K terms: |error| ≤ γ_K(u)·|x|ᵀ|w| (Higham §3.1), products included;
    # complex: the any-order complex bound (crosscheck.bounds).
    method = "conventional" if np.iscomplexobj(cols) else None
    bound = accumulation_factor(spec.terms, F64_U, complex_method=method) * magnitude
    return ReferenceResult(ungroup(y.reshape(shape)), None, magnitude, bound, "im2col")
