"""The default reference's fast paths: batch-major GEMMs whose results land in the canonical layout.

`gemm` multiplies one im2col matrix per group (G, K, N·P) and then transposes every result to (N, C_out, *out).
Here the matrices are (N, G, K, P), so `A @ B` broadcast over (N, G) is already (N, G, C_out/G, P), the canonical
layout, and a 1×1 convolution of stride 1 needs no im2col copy at all. What else saves passes over memory:

- float32 and narrower: one float64 im2col of x for the exact-product GEMM, one float32 im2col of |x| (moduli
  taken on the 9–27× smaller padded input) for M; or, for layers with few filter rows per group, one float32 im2col
  of x, cast to float64 for y and turned into its moduli in place for M. Either way the columns are built a chunk of
  images or groups at a time, small enough to be read back from cache. The range check reads x and w, never the
  columns.
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
from collections.abc import Iterator
from typing import Any

import numpy as np

from crosscheck.core.bounds import F64_U, gamma
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.reference.geometry import grouped_input, tap_windows

# Rows of an im2col matrix a multiple of this many bytes apart alias in the cache (4K aliasing): OpenBLAS' float32
# GEMM with 16 or 32 filter rows ran 25–30 % slower on columns of 1024, 2048 or 4096 float32 positions (32×32
# images) than on the same columns with each row padded by one cache line, and no slower anywhere else measured.
_ALIASING_BYTES = 4096
_ROW_PAD_BYTES = 64


def stacked_columns(inputs: list[np.ndarray], spec: ConvSpec) -> np.ndarray:
    """(N, G, S·K, P): the im2col matrices of S padded grouped inputs (each (N, G, Cg, *padded)) stacked along K,
    K ordered (channel, kernel taps) like the filter."""
    rank = spec.rank
    x = inputs[0][None] if len(inputs) == 1 else np.stack(inputs)  # (S, N, G, Cg, *padded)
    v = tap_windows(x, spec)  # (S, N, G, Cg, *kernel, *out)
    v = v.transpose(1, 2, 0, *range(3, 4 + 2 * rank))  # (N, G, S, Cg, *kernel, *out)
    return np.ascontiguousarray(v).reshape(spec.batch, spec.groups, len(inputs) * spec.terms, -1)


def product(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """A (..., R, K) @ B (..., K, P), broadcast, into `out` if given. A depthwise layer's rows are single (R = 1):
    its products are matrix-vector products over a B that does not fit in cache, and NumPy's einsum streams B at
    ~1.6× the rate of matmul's batched BLAS calls here (1.0 vs 1.7 ms for ConvNeXt's 7×7 layer, one thread). Both
    sum each element's K products in some order, which is all the error bounds assume (any order; exact sums stay
    exact)."""
    if a.shape[-2] == 1:
        return np.asarray(np.einsum("...rk,...kp->...rp", a, b, out=out))
    return np.asarray(np.matmul(a, b, out=out))


def canonical(spec: ConvSpec, y: np.ndarray) -> np.ndarray:
    """(N, G, C_out/G, P) -> (N, C_out, *out): a reshape, no copy."""
    return y.reshape(spec.batch, spec.out_channels, *spec.out_size)


def magnitude_float64(moduli_a: np.ndarray, moduli_x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """|A|·|B| (N, G, Og, P) in float64 from |A| (G, Og, K) and the padded |x| (N, G, Cg, *padded), rounded up past
    its own error (sums of K non-negative terms: γ_{K+1})."""
    m = product(moduli_a, stacked_columns([moduli_x], spec))
    m *= 1 + gamma(spec.terms + 1, F64_U)
    return m


# `narrow` builds and multiplies the columns a chunk of images or groups at a time, each chunk's float64 columns at
# most this size, so that the GEMMs read them from cache, not memory. Against one chunk (Zen 4: 1 MiB L2 per core,
# 32 MiB L3; one thread, same process, interleaved): a 32- and a 64-channel 3×3 layer at 32² with 4 images 0.95× and
# 0.88×, ConvNeXt's 7×7 depthwise layer (30 MB of columns) 0.93×, MobileNet's 3×3 depthwise at 28² 0.94×.
_CHUNK_BYTES = 4 << 20
# Filter rows per group up to which `narrow` gathers the columns once, in float32, and derives both GEMMs' operands
# from them by contiguous passes (a cast to float64, then the moduli in place) instead of gathering x in float64 and
# |x| in float32. A strided gather costs per run of output positions, the two passes per element, and the GEMMs'
# cost per column grows with the rows. One gather against two (same chunks): 16 rows per group 0.87–0.89× (a 3×3
# layer at 24², a 3-D U-Net layer), depthwise 0.91–0.95×; 32 rows 1.03–1.10×; 64 rows 0.98–1.08×.
_ONE_GATHER_ROWS = 16
# The chunks' columns go into buffers allocated once per call and reused by every chunk: fewer large blocks for
# glibc to map afresh. A process repeating ConvNeXt's layer from a fresh start took 1,981 page faults per call
# instead of 2,747 (7.1 vs 8.6 ms); one that has freed a larger block first (a run of mixed sizes, the benchmark after
# its warm-up) takes none either way.
Scratch = dict[str, np.ndarray]


def _buffer(scratch: Scratch, slot: str, shape: tuple[int, ...], dtype: type | np.dtype[Any]) -> np.ndarray:
    """An uninitialised array of `shape` and `dtype` in `scratch[slot]`, which is allocated on first use and reused
    (the first chunk is the largest); the next use of the slot overwrites it."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    kept = scratch.get(slot)
    if kept is None or kept.size < nbytes:
        kept = scratch[slot] = np.empty(nbytes, np.uint8)
    return kept[:nbytes].view(dtype).reshape(shape)


def gather(x: np.ndarray, spec: ConvSpec, scratch: Scratch, slot: str, unaliased: bool = False) -> np.ndarray:
    """The im2col matrix (n, g, K, P) of a chunk x (n, g, Cg, *padded) of the images and groups, `stacked_columns`'
    layout, in `scratch[slot]`, or x's own read-only view where that is already contiguous (a 1×1 layer of stride 1
    without padding). `unaliased`: rows whose length is a multiple of 4096 bytes get a cache line of padding after
    them (the matrix is then a strided view, as BLAS takes it)."""
    v = tap_windows(x, spec)  # (n, g, Cg, *kernel, *out)
    n, g = x.shape[:2]
    p = math.prod(spec.out_size)
    pad = _ROW_PAD_BYTES // x.itemsize if unaliased and p * x.itemsize % _ALIASING_BYTES == 0 else 0
    if not pad and v.flags.c_contiguous:
        return v.reshape(n, g, spec.terms, p)
    columns = _buffer(scratch, slot, (n, g, spec.terms, p + pad), x.dtype)[..., :p]
    target = columns.reshape(v.shape)  # splits axes only: a view
    if not np.may_share_memory(target, columns):
        raise AssertionError("the im2col target must be a view of the scratch buffer")
    target[...] = v
    return columns


def chunks(spec: ConvSpec) -> Iterator[tuple[slice, slice]]:
    """(images, groups) slices that cover the problem, each chunk's float64 im2col within `_CHUNK_BYTES` (or one
    group of one image, where that alone is larger): whole images where a whole image fits, else groups of one."""
    per_group = spec.terms * math.prod(spec.out_size) * 8
    groups = max(1, min(spec.groups, _CHUNK_BYTES // max(per_group, 1)))
    images = max(1, min(spec.batch, _CHUNK_BYTES // max(per_group * spec.groups, 1))) if groups == spec.groups else 1
    for n0 in range(0, spec.batch, images):
        for g0 in range(0, spec.groups, groups):
            yield slice(n0, n0 + images), slice(g0, g0 + groups)


def narrow(problem: ConvProblem, a32: np.ndarray, *, float32_moduli: bool) -> tuple[np.ndarray, np.ndarray]:
    """(y, M) of a float32-or-narrower problem, (N, C_out, *out): y by float64 GEMMs (products exact, only the K
    additions round), M in float64, or, with `float32_moduli`, by float32 GEMMs of the moduli (twice float64's
    rate): the caller has checked that the moduli are exact in float32 and every product is normal and K
    of them cannot overflow, so the computed sum of K non-negative terms is within γ_K(2⁻²⁴) of the exact one in
    any order: exact ≤ computed / (1 − γ_K), a bound at most ~K·2⁻²⁴ (relative) looser than with the exact M.
    Chunks (`chunks`) change which elements one GEMM call computes, not how any element is summed."""
    spec = problem.spec
    rows = a32.shape[-2]
    a = a32.astype(np.float64)
    y = np.empty((spec.batch, spec.groups, rows, math.prod(spec.out_size)))
    scratch: Scratch = {}
    if not float32_moduli:
        xg = grouped_input(problem.x, spec, np.float64)
        for images, groups in chunks(spec):
            product(a[groups], gather(xg[images, groups], spec, scratch, "float64"), out=y[images, groups])
        return canonical(spec, y), canonical(spec, magnitude_float64(np.abs(a), np.abs(xg), spec))
    moduli_a = np.abs(a32)
    m32 = np.empty(y.shape, np.float32)
    unaliased = rows > 1
    if rows <= _ONE_GATHER_ROWS:
        # x's values are exact in float32 (the problem's dtype is float32 or narrower), so are their columns.
        x32 = grouped_input(problem.x, spec, np.float32)
        for images, groups in chunks(spec):
            b = gather(x32[images, groups], spec, scratch, "float32", unaliased)
            b64 = _buffer(scratch, "float64", b.shape, np.float64)
            b64[...] = b
            product(a[groups], b64, out=y[images, groups])
            moduli = b if b.flags.writeable else b64.view(np.float32)[..., : b.shape[-1]]
            np.abs(b, out=moduli)
            product(moduli_a[groups], moduli, out=m32[images, groups])
    else:
        xg = grouped_input(problem.x, spec, np.float64)
        # Padded and gathered in float32: half the bytes of float64.
        mg = grouped_input(np.abs(problem.x.astype(np.float32, copy=False)), spec, np.float32)
        for images, groups in chunks(spec):
            product(a[groups], gather(xg[images, groups], spec, scratch, "float64"), out=y[images, groups])
            columns = gather(mg[images, groups], spec, scratch, "float32", unaliased)
            product(moduli_a[groups], columns, out=m32[images, groups])
    mag = m32.astype(np.float64)
    mag *= (1 + 2 * F64_U) / (1 - gamma(spec.terms, 2.0**-24))
    return canonical(spec, y), canonical(spec, mag)
