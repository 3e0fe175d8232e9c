"""The dot-product view: each output element is the dot product of its flattened window with the
flattened filter, so the whole convolution is one plain matrix product (im2col) in float64 (complex128),
with the textbook dot-product bound. It shares the im2col matrix with `gemm`, which adds the exact
float64 slices and the float32 magnitude on top of the same product."""

from __future__ import annotations

import numpy as np

from crosscheck.core.bounds import F64_U, accumulation_factor
from crosscheck.core.problem import ConvProblem
from crosscheck.reference.gemm import canonical, columns, filters, magnitude_product
from crosscheck.reference.geometry import work_dtype
from crosscheck.reference.result import ReferenceResult


def im2col(problem: ConvProblem) -> ReferenceResult:
    spec = problem.spec
    work = work_dtype(problem.x)
    rows, cols = filters(problem, work), columns(problem, work)  # (G, C_out/G, K), (G, K, N·P)
    magnitude = magnitude_product(rows, cols, spec.terms)
    if np.iscomplexobj(cols):
        magnitude = magnitude * (1 + 4 * F64_U)  # np.abs of complex128 is within an ulp
    magnitude = canonical(spec, magnitude)
    # A float64 dot product of K terms: |error| ≤ γ_K(u)·|x|ᵀ|w| (Higham §3.1), products included;
    # complex: the any-order complex bound (crosscheck.core.bounds).
    method = "conventional" if np.iscomplexobj(cols) else None
    bound = accumulation_factor(spec.terms, F64_U, complex_method=method) * magnitude
    return ReferenceResult(canonical(spec, np.matmul(rows, cols)), None, magnitude, bound, "im2col")
