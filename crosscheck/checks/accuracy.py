"""Accuracy models: which error bound a convolution is judged by (docs/accuracy.md derives each).

- ``elementwise`` (the default, core.bounds): every output element within u_out·|y| + γ_K(u_acc)·M of the exact
  value, M = |x| ⋆ |w|. Direct loops, im2col + GEMM and every summation order meet it.
- ``normwise``: the bound of an FFT-based correlation (Higham, Theorem 24.2), per output channel from the norms
  of the whole input channel and filter (`crosscheck.reference.fft.normwise_bound`, the one formula the SciPy
  FFT backend is judged by too). A zero element next to large ones may be off by the noise of its neighbours.
- ``winograd``: the bound of a Winograd / Toom-Cook algorithm F(m, r) (Lavin & Gray 2016) built on the usual
  interpolation points 0, ±1, ±2, ±1/2, … and ∞, for the output tile sizes m in `WINOGRAD_TILES` (``winograd``
  covers each of them; ``winograd:M`` one), with r the kernel size along each axis (a dilated kernel on the input's
  dilation phases, and also as its dense equivalent where that fits a tile: `winograd_layouts`). Each element is
  within u_out·|y| + γ_k(u_acc)·W, W the magnitude the transforms carry (|Aᵀ|((|G||g|) ⊙ (|Bᵀ||d|)) for the
  tile that holds the element, maximised over where the tiles start), or within the element-wise bound (a
  kernel that runs other shapes directly).

`bound(problem, ref, u_acc, model, ...)` in crosscheck.checks.forward applies them; this module holds the parts
that are not the element-wise bound.
"""

from __future__ import annotations

import functools
import itertools
from fractions import Fraction

import numpy as np

from crosscheck.core.bounds import F64_U, gamma
from crosscheck.core.padding import effective_kernel
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.reference.elementwise import magnitude

MODELS = ("elementwise", "normwise", "winograd")
WINOGRAD_TILES = (2, 4, 6)
# The widest kernel a Winograd tile takes as such (F(m, 7)): past it the interpolation constants, which grow like
# p^(r−1), make W meaningless (a 3×3 kernel dilated by 12 as a 25×25 tile allows errors of 10¹⁹·M), and no
# library tiles such kernels; a dilated kernel wider than this is modelled only on its phases.
DENSE_MAX_TAPS = 7
# What a user may pass: the models, and the Winograd model for one output tile size.
CHOICES = (*MODELS, *(f"winograd:{m}" for m in WINOGRAD_TILES))
DESCRIPTIONS = {
    "elementwise": "every element within u·|y| + γ_K·(|x| ⋆ |w|) (direct sums, im2col + GEMM)",
    "normwise": "the FFT bound: each output channel within its norms' error (Higham, Theorem 24.2)",
    "winograd": f"the Winograd F(m, r) bound with its transform constants, m in {', '.join(map(str, WINOGRAD_TILES))}",
}


def parse(model: str) -> str:
    """`model` if it names an accuracy model (see CHOICES), else ValueError with the choices."""
    if model not in CHOICES:
        raise ValueError(f"accuracy model {model!r}: expected one of {', '.join(CHOICES)}")
    return model


def family(model: str) -> str:
    """'winograd:4' -> 'winograd'."""
    return model.partition(":")[0]


def describe(model: str) -> str:
    base = family(model)
    text = DESCRIPTIONS[base]
    if base == "winograd" and ":" in model:
        text = text.rsplit(",", 1)[0] + f", m = {model.partition(':')[2]}"
    return text


def winograd_tiles(model: str) -> tuple[int, ...]:
    _, sep, m = model.partition(":")
    return (int(m),) if sep else WINOGRAD_TILES


# ------------------------------------------------------------------------------------- Winograd F(m, r)


def interpolation_points(count: int) -> list[Fraction]:
    """The first `count` finite points of the usual sequence 0, 1, −1, 2, −2, 1/2, −1/2, 3, −3, 1/3, −1/3, …"""
    points = [Fraction(0)]
    k = 1
    while len(points) < count:
        for p in (Fraction(k), Fraction(-k), Fraction(1, k), Fraction(-1, k)) if k > 1 else (Fraction(1), Fraction(-1)):
            if p not in points:
                points.append(p)
        k += 1
    return points[:count]


def _vandermonde(points: list[Fraction], cols: int) -> list[list[Fraction]]:
    """Rows [1, p, p², …] for each finite point, and the point at infinity's row e_{cols−1} (the leading term)."""
    rows = [[p**j for j in range(cols)] for p in points]
    rows.append([Fraction(int(j == cols - 1)) for j in range(cols)])
    return rows


def _inverse(a: list[list[Fraction]]) -> list[list[Fraction]]:
    """Exact Gauss-Jordan inverse of a nonsingular square matrix of fractions."""
    n = len(a)
    aug = [row[:] + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(a)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if aug[r][col] != 0)
        aug[col], aug[pivot] = aug[pivot], aug[col]
        head = aug[col][col]
        aug[col] = [v / head for v in aug[col]]
        for r in range(n):
            if r != col and aug[r][col] != 0:
                f = aug[r][col]
                aug[r] = [v - f * c for v, c in zip(aug[r], aug[col])]
    return [row[n:] for row in aug]


@functools.cache
def toom_cook(m: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Aᵀ, G, Bᵀ) of Winograd's minimal filtering F(m, r): y = Aᵀ[(G·g) ⊙ (Bᵀ·d)] for a tile d of
    n = m + r − 1 inputs and a filter g of r taps gives the m correlation outputs y_i = Σ_k d_{i+k}·g_k.

    Built from the Toom-Cook convolution s = V⁻¹[(V_r·g) ⊙ (V_m·h)] on the points `interpolation_points(n − 1)`
    and ∞ (V_k: the Vandermonde rows truncated to k columns), transposed in h: Aᵀ = V_mᵀ, G = V_r, Bᵀ = V⁻ᵀ.
    Lavin & Gray's matrices for F(2, 3) and F(4, 3) are these up to a scaling of the rows of G (and of the
    columns of Aᵀ, or rows of Bᵀ) that leaves |Aᵀ|((|G||g|) ⊙ (|Bᵀ||d|)), all the bound needs, unchanged.
    """
    n = m + r - 1
    points = interpolation_points(n - 1)
    v = _vandermonde(points, n)
    v_inv = _inverse(v)
    a_t = np.array([[float(row[i]) for row in _vandermonde(points, m)] for i in range(m)])
    g = np.array([[float(x) for x in row] for row in _vandermonde(points, r)])
    b_t = np.array([[float(v_inv[j][i]) for j in range(n)] for i in range(n)])
    return a_t, g, b_t


def winograd_depth(spec_kernel: tuple[int, ...], channels: int, m: int) -> int:
    """k with |ŷ − y| ≤ γ_k(u)·W: per axis, G's r-term sums (r − 1 additions, one product with a constant, the
    constant's own rounding: r + 1), Bᵀ's and Aᵀ's n-term sums (n + 1 each), and the channel sum of the
    transformed products, a dot product of C terms (γ_C)."""
    return sum(r + 1 + 2 * (m + r - 1 + 1) for r in spec_kernel) + channels


def winograd_layouts(spec: ConvSpec) -> tuple[bool, ...]:
    """How a Winograd kernel may run `spec`'s kernel, as `dense` flags for `winograd_magnitude`: in phases
    (False: the undilated kernel, r = k, on the input's dilation phases, as TensorFlow's space-to-batch runs a
    dilated convolution), and, for a dilated kernel whose dilated size fits a Winograd tile (every axis at most
    DENSE_MAX_TAPS), also as its dense equivalent (True: r = the dilated size)."""
    if all(d == 1 for d in spec.dilation):
        return (False,)
    dense = [effective_kernel(k, d) for k, d in zip(spec.kernel, spec.dilation) if d > 1]
    return (False, True) if max(dense) <= DENSE_MAX_TAPS else (False,)


def _tile_kernels(g: np.ndarray, m: int) -> np.ndarray:
    """The kernel of the correlation that gives W: (O, Cg, *width) with width = n + m − 1 = 2m + r − 2 taps per
    axis, the largest weight of input offset q over the m positions an output can take in its tile.

    For output i of a tile, input l of it (at offset l − i from the output) weighs h_i[l] = Σ_j |Aᵀ|_ij·|Bᵀ|_jl·
    (|G||g|)_j along each axis; the maximum over the shifted h_i bounds every tiling. One tile position at a time
    (m^rank of them), so memory stays that of one (O, Cg, n, …) array.
    """
    rank = g.ndim - 2
    h = g
    per_axis = []
    for axis, r in enumerate(g.shape[2:]):
        a_t, g_m, b_t = (np.abs(t) for t in toom_cook(m, r))
        h = np.moveaxis(np.tensordot(h, g_m, axes=([2 + axis], [1])), -1, 2 + axis)  # |G||g| along this axis
        per_axis.append(np.einsum("ij,jl->ijl", a_t, b_t))  # (m, n, n): |Aᵀ|_ij·|Bᵀ|_jl
    n = h.shape[2:]
    combined = np.zeros((*g.shape[:2], *(nd + m - 1 for nd in n)))
    for tile in itertools.product(range(m), repeat=rank):
        k = h
        for axis, i in enumerate(tile):
            k = np.moveaxis(np.tensordot(k, per_axis[axis][i], axes=([2 + axis], [0])), -1, 2 + axis)
        # Output i of a tile reads inputs l of it, i.e. offset l − i from the output: place at (m − 1) − i.
        where = (slice(None), slice(None), *(slice(m - 1 - i, m - 1 - i + nd) for i, nd in zip(tile, n)))
        np.maximum(combined[where], k, out=combined[where])
    return combined


def winograd_magnitude(problem: ConvProblem, m: int, dense: bool = False) -> np.ndarray:
    """W per output element: the largest |Aᵀ|((|G||g|) ⊙ (|Bᵀ||d|)) summed over the input channels, over every
    position the element can take in an m-sized output tile (so, over every tiling).

    `dense`: a dilated kernel as its dense equivalent (r = the dilated size; Winograd on it, then striding,
    computes exactly the same sums); otherwise (and always for an undilated kernel) the kernel itself on each
    dilation phase of the input (r = k; the tile's m outputs are d apart, and so are its inputs).
    """
    spec = problem.spec
    rank = spec.rank
    w = np.abs(problem.w.astype(np.float64))
    if dense:
        eff = tuple(effective_kernel(k, d) for k, d in zip(spec.kernel, spec.dilation))
        g = np.zeros((*spec.w_shape[:2], *eff))
        g[(slice(None), slice(None), *(slice(None, None, d) for d in spec.dilation))] = w
        step = (1,) * rank
    else:
        g, step = w, spec.dilation
    combined = _tile_kernels(g, m)
    # W[p] = Σ_c Σ_q |x|[p·s + (q − (m − 1))·d]·combined[q]: the magnitude of a correlation with the wider kernel
    # (2m − 2 more taps per axis, dilated by the phase step), the input padded by (m − 1)·d more on each side.
    wide = spec.with_(
        kernel=combined.shape[2:],
        dilation=step,
        padding=tuple((lo + (m - 1) * d, hi + (m - 1) * d) for (lo, hi), d in zip(spec.pads, step)),
        dtype="float64",
    )
    return magnitude(ConvProblem(wide, np.abs(problem.x.astype(np.float64)), combined))


def winograd_error(problem: ConvProblem, u: float, model: str = "winograd") -> np.ndarray:
    """φ per output element with |ŝ − y| ≤ φ for a Winograd F(m, r) computed in precision u, before the result
    is rounded to the output dtype: γ_k(u)·W maximised over the tile sizes of `model` and the ways
    (`winograd_layouts`) a kernel may run a dilated filter."""
    spec = problem.spec
    if np.iscomplexobj(problem.x):
        raise ValueError("the winograd accuracy model covers real dtypes only")
    eff = tuple(effective_kernel(k, d) for k, d in zip(spec.kernel, spec.dilation))
    channels = spec.in_channels // spec.groups
    out = np.zeros(spec.y_shape)
    for dense in winograd_layouts(spec):
        taps = eff if dense else spec.kernel
        for m in winograd_tiles(model):
            k = winograd_depth(taps, channels, m)
            np.maximum(out, gamma(k, u) * winograd_magnitude(problem, m, dense), out=out)
    return out * (1 + 8 * F64_U)
