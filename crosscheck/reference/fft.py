"""The convolution-theorem view: correlation is a product in the frequency domain.

Its error is normwise, not per element (docs/accuracy.md derives it): for each (n, o), with C input channels per
group, transforms of L points in all (e_F the FFT error factor of Higham's Theorem 24.2 for log2(L) stages,
`bounds.normwise_fft_factor`), e_I = e_F + u(1 + e_F) for the inverse with its 1/L scaling, and
ε = √2·γ_2C(u) for the products summed over the channels,

    ‖ŷ − y‖∞ ≤ (1 + e_I)(1 + e_F)(1 + e_F·√L)(1 + γ_C) · Σ_c [(e_F + e_I + ε)·‖x_c‖₂‖w_c‖₁ + e_F·‖x_c‖₁‖w_c‖₂]

whether the channels are summed in the frequency domain or after the inverse transforms.
"""

from __future__ import annotations

import math

import numpy as np

from crosscheck.core.bounds import F64_U, accumulation_factor, gamma, normwise_fft_factor
from crosscheck.core.padding import effective_kernel
from crosscheck.core.problem import ConvProblem
from crosscheck.reference.elementwise import magnitude
from crosscheck.reference.geometry import grouped_input, grouped_weight, ungroup
from crosscheck.reference.result import ReferenceResult


def _dilated(wg: np.ndarray, dilation: tuple[int, ...]) -> np.ndarray:
    rank = len(dilation)
    k = wg.shape[-rank:]
    eff = tuple((ki - 1) * d + 1 for ki, d in zip(k, dilation))
    out = np.zeros(wg.shape[:-rank] + eff, dtype=wg.dtype)
    out[(...,) + tuple(slice(None, None, d) for d in dilation)] = wg
    return out


def fft(problem: ConvProblem) -> ReferenceResult:
    spec = problem.spec
    rank = spec.rank
    axes = tuple(range(-rank, 0))
    xg = grouped_input(problem.x, spec)  # (N, G, Cg, *P)
    wg = _dilated(grouped_weight(problem.w, spec), spec.dilation)  # (G, Og, Cg, *eff)
    size = xg.shape[-rank:]
    full: np.ndarray
    if np.iscomplexobj(xg):
        # The CNN's correlation does not conjugate w: its spectrum is that of w reversed, W[−k],
        # which for complex w is conj(FFT(conj(w)))[k] (for real w simply conj(W[k])).
        xf = np.fft.fftn(xg, s=size, axes=axes)
        wf = np.fft.fftn(np.conj(wg), s=size, axes=axes)
        full = np.fft.ifftn(np.einsum("ngc...,goc...->ngo...", xf, np.conj(wf)), s=size, axes=axes)
    else:
        xf = np.fft.rfftn(xg, s=size, axes=axes)
        wf = np.fft.rfftn(wg, s=size, axes=axes)
        # Correlation, not convolution: the filter's spectrum is conjugated.
        yf = np.einsum("ngc...,goc...->ngo...", xf, np.conj(wf))
        full = np.fft.irfftn(yf, s=size, axes=axes)
    index = tuple(slice(0, (n - 1) * s + 1, s) for n, s in zip(spec.out_size, spec.stride))
    y = ungroup(full[(...,) + index])

    bound = normwise_bound(problem, F64_U, size)
    return ReferenceResult(y, None, magnitude(problem), bound, "fft")


def linear_fft_lengths(problem: ConvProblem) -> tuple[int, ...]:
    """Per axis, the power of two at or above the linear correlation's length (padded input + dilated kernel − 1):
    at least as long as any transform an FFT correlation needs (a circular one of the padded input's length, or a
    linear one padded to a fast length such as `scipy.fft.next_fast_len`'s), so its e_F bounds theirs."""
    spec = problem.spec
    eff = (effective_kernel(k, d) for k, d in zip(spec.kernel, spec.dilation))
    return tuple(1 << max(n + lo + hi + e - 2, 1).bit_length() for n, (lo, hi), e in zip(spec.in_size, spec.pads, eff))


def normwise_bound(problem: ConvProblem, u: float, lengths: tuple[int, ...] | None = None) -> np.ndarray:
    """Per-element bound (broadcast over positions) of an FFT-based correlation in precision u (the module's
    formula), with transforms of `lengths` points per axis (default: `linear_fft_lengths`)."""
    spec = problem.spec
    rank = spec.rank
    xg = grouped_input(problem.x, spec)
    # The filter's norms over its taps: inserting the dilation's zeros changes neither, and would materialise
    # prod(dilated size) / prod(kernel) times the filter (4.9 GiB for a 2048→256 3×3 complex128 layer at rate 12).
    wg = grouped_weight(problem.w, spec)
    points = math.prod(lengths or linear_fft_lengths(problem))
    e_f = normwise_fft_factor(points, u)
    e_i = e_f + u * (1 + e_f)
    channels = spec.in_channels // spec.groups
    eps = accumulation_factor(channels, u, complex_method="conventional")  # √2·γ_2C: the complex dot products
    red = tuple(range(3, 3 + rank))
    x2 = np.sqrt(np.sum(np.abs(xg) ** 2, axis=red))  # (N, G, Cg)
    x1 = np.sum(np.abs(xg), axis=red)
    w2 = np.sqrt(np.sum(np.abs(wg) ** 2, axis=red))  # (G, Og, Cg)
    w1 = np.sum(np.abs(wg), axis=red)
    first = (e_f + e_i + eps) * np.einsum("ngc,goc->ngo", x2, w1) + e_f * np.einsum("ngc,goc->ngo", x1, w2)
    # The second-order terms (products of two error factors), the spatial-domain channel sum and the bound's own
    # float64 evaluation, each dominated by one trailing factor (docs/accuracy.md).
    b = first * (1 + e_i) * (1 + e_f) * (1 + e_f * math.sqrt(points)) * (1 + gamma(channels, u)) * (1 + 8 * F64_U)
    return np.asarray(ungroup(b)[(...,) + (None,) * rank] * np.ones(spec.y_shape))
