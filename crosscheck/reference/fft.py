"""The convolution-theorem view: correlation is a product in the frequency domain.

Its error is normwise, not per element: for each (n, o) and input channel c, with L points,
‖ŷ − y‖∞ ≤ (2e_F + 3u)·‖x_c‖₂·‖w_c‖₁ + e_F·‖x_c‖₁·‖w_c‖₂ summed over c, plus the channel sum's
γ_C; e_F is the FFT error factor of Higham's Theorem 24.2 (see `bounds.normwise_fft_factor`).
"""

from __future__ import annotations

import math

import numpy as np

from crosscheck.bounds import F64_U, gamma, normwise_fft_factor
from crosscheck.problem import ConvProblem
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

    bound = normwise_bound(problem, F64_U)
    return ReferenceResult(y, None, magnitude(problem), bound, "fft")


def normwise_bound(problem: ConvProblem, u: float) -> np.ndarray:
    """Per-element bound (broadcast over positions) of an FFT-based correlation in precision u."""
    spec = problem.spec
    rank = spec.rank
    xg = grouped_input(problem.x, spec)
    wg = _dilated(grouped_weight(problem.w, spec), spec.dilation)
    e_f = normwise_fft_factor(math.prod(xg.shape[-rank:]), u)
    red = tuple(range(3, 3 + rank))
    x2 = np.sqrt(np.sum(np.abs(xg) ** 2, axis=red))  # (N, G, Cg)
    x1 = np.sum(np.abs(xg), axis=red)
    w2 = np.sqrt(np.sum(np.abs(wg) ** 2, axis=red))  # (G, Og, Cg)
    w1 = np.sum(np.abs(wg), axis=red)
    per_pair = (2 * e_f + 3 * u) * np.einsum("ngc,goc->ngo", x2, w1) + e_f * np.einsum("ngc,goc->ngo", x1, w2)
    # Second-order terms (products of two error factors) are covered by the trailing factor.
    b = per_pair * (1 + gamma(spec.in_channels // spec.groups + 2, u)) * (1 + 4 * e_f)
    return np.asarray(ungroup(b)[(...,) + (None,) * rank] * np.ones(spec.y_shape))
