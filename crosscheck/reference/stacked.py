"""The default reference's fast paths: batch-major GEMMs whose results land in the canonical layout.

`gemm` multiplies one im2col matrix per group (G, K, N·P) and then transposes every result to (N, C_out, *out).
Here the matrices are (N, G, K, P), so `A @ B` broadcast over (N, G) is already (N, G, C_out/G, P), the canonical
layout, and a 1×1 convolution of stride 1 needs no im2col copy at all. What else saves passes over memory:

- float32 and narrower: one float64 im2col of x for the exact-product GEMM, one float32 im2col of |x| (moduli
  taken on the 9–27× smaller padded input) for M; the range check reads x and w, never the columns.
- float64: the error-free slices are cut on the *padded input*, aligned to each (image, group)'s largest power
  of two instead of each column's, and the slices' im2col matrices are stacked along K: [B1; B2; ...; Bs].
  The products of one level t = i + j (A_i·B_j) are then one GEMM, [A_{t−1}, ..., A_1] @ [B1; ...; B_{t−1}], of
  (t − 1)·K terms. With b bits per slice and s·K·2^(2b) ≤ 2^53 (`slice_bits(s·K)`) every level's sum is a sum of
  integers (in units of its quantum) below 2^53: exact in float64 in any order, as one product was in `gemm`.
  So s(s+1)/2 slice products cost s GEMMs streaming B once each, and s two-sums instead of s(s+1)/2.
  A coarser alignment leaves more truncation for windows whose values are far below the image's largest; the
  per-element truncation bound sees that (its scale is 2^(e_row + f_image)), and `gemm` then takes its per-column
  slices: the bound and its share of the judged bound are the same test on both paths (`gemm._stacked_float64`).
"""

from __future__ import annotations

import math

import numpy as np

from crosscheck.core.bounds import F64_U, gamma
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.reference.geometry import grouped_input, tap_windows

# Rows of an im2col matrix a multiple of this many bytes apart alias in the cache (4K aliasing): OpenBLAS' float32
# GEMM with 16 or 32 filter rows ran 25–30 % slower on columns of 1024, 2048 or 4096 float32 positions (32×32
# images) than on the same columns with each row padded by one cache line, and no slower anywhere else measured.
_ALIASING_BYTES = 4096
_ROW_PAD_BYTES = 64


def stacked_columns(inputs: list[np.ndarray], spec: ConvSpec, *, unaliased: bool = False) -> np.ndarray:
    """(N, G, S·K, P): the im2col matrices of S padded grouped inputs (each (N, G, Cg, *padded)) stacked along K,
    K ordered (channel, kernel taps) like the filter. `unaliased`: rows whose length is a multiple of 4096 bytes
    get a cache line of padding after them (the matrix is then a strided view, as BLAS takes it)."""
    rank = spec.rank
    x = inputs[0][None] if len(inputs) == 1 else np.stack(inputs)  # (S, N, G, Cg, *padded)
    v = tap_windows(x, spec)  # (S, N, G, Cg, *kernel, *out)
    v = v.transpose(1, 2, 0, *range(3, 4 + 2 * rank))  # (N, G, S, Cg, *kernel, *out)
    n, g, rows, p = spec.batch, spec.groups, len(inputs) * spec.terms, math.prod(spec.out_size)
    if not (unaliased and p * x.itemsize % _ALIASING_BYTES == 0):
        return np.ascontiguousarray(v).reshape(n, g, rows, p)
    padded = np.empty((n, g, rows, p + _ROW_PAD_BYTES // x.itemsize), x.dtype)
    columns = padded[..., :p]
    target = columns.reshape(v.shape)  # only splits axes: a view of `padded`
    if target.base is not padded:
        raise AssertionError("the padded im2col target must be a view")
    target[...] = v
    return columns


def product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A (..., R, K) @ B (..., K, P), broadcast. A depthwise layer's rows are single (R = 1): its products are
    matrix-vector products over a B that does not fit in cache, and NumPy's einsum streams B at ~1.6× the rate of
    matmul's batched BLAS calls here (1.0 vs 1.7 ms for ConvNeXt's 7×7 layer, one thread). Both sum each element's
    K products in some order, which is all the error bounds assume (any order; exact sums stay exact)."""
    if a.shape[-2] == 1:
        return np.asarray(np.einsum("...rk,...kp->...rp", a, b))
    return np.asarray(np.matmul(a, b))


def canonical(spec: ConvSpec, y: np.ndarray) -> np.ndarray:
    """(N, G, C_out/G, P) -> (N, C_out, *out): a reshape, no copy."""
    return y.reshape(spec.batch, spec.out_channels, *spec.out_size)


def magnitude_float64(moduli_a: np.ndarray, moduli_x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """|A|·|B| (N, G, Og, P) in float64 from |A| (G, Og, K) and the padded |x| (N, G, Cg, *padded), rounded up past
    its own error (sums of K non-negative terms: γ_{K+1})."""
    m = product(moduli_a, stacked_columns([moduli_x], spec))
    m *= 1 + gamma(spec.terms + 1, F64_U)
    return m


def narrow(problem: ConvProblem, a32: np.ndarray, moduli32: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(y, M) of a float32-or-narrower problem, (N, C_out, *out): y by one float64 GEMM (products exact, only the
    K additions round), M in float64, or, given `moduli32` (|x| in float32), by a float32 GEMM of the moduli (twice
    float64's rate): the caller has checked that the moduli are exact in float32 and every product is normal and K
    of them cannot overflow, so the computed sum of K non-negative terms is within γ_K(2⁻²⁴) of the exact one in
    any order: exact ≤ computed / (1 − γ_K), a bound at most ~K·2⁻²⁴ (relative) looser than with the exact M."""
    spec = problem.spec
    a = a32.astype(np.float64)
    xg = grouped_input(problem.x, spec, np.float64)
    y = product(a, stacked_columns([xg], spec))
    if moduli32 is not None:
        # Padded and gathered in float32: half the bytes of float64.
        columns = stacked_columns([grouped_input(moduli32, spec, np.float32)], spec, unaliased=a32.shape[-2] > 1)
        m32 = product(np.abs(a32), columns)
        slack = (1 + 2 * F64_U) / (1 - gamma(spec.terms, 2.0**-24))
        mag = np.asarray(m32.astype(np.float64) * slack)
    else:
        mag = magnitude_float64(np.abs(a), np.abs(xg), spec)
    return canonical(spec, y), canonical(spec, mag)
