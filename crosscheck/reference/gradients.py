"""The reference vector-Jacobian product of a convolution, straight from the definitions.

With y[n, o, m] = Σ_c Σ_u x_pad[n, g·Cg + c, m·stride + u·dilation] · w[o, c, u] and a cotangent g
shaped like y:

    grad_x[n, g·Cg + c, i] = Σ_{o in group g} Σ_{(m, u): m·stride + u·dilation − lo = i} g[n, o, m] · w[o, c, u]
    grad_w[o, c, u]        = Σ_n Σ_m x_pad[n, g·Cg + c, m·stride + u·dilation] · g[n, o, m]

grad_x is the transposed convolution of g with w (the full correlation of g with the flipped kernel,
cropped by the pads); grad_w is the correlation of the input with the cotangent. Both are computed
like the forward reference: float32 and narrower values multiply exactly in float64 and only the
additions round; float64 values get error-free products and compensated sums (double-double);
integers are exact. Each result carries its own magnitude M = the same sum of |products|.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from crosscheck.core.adjoint import input_gradient_terms, weight_gradient_terms
from crosscheck.core.bounds import F64_U, gamma, gamma_array
from crosscheck.core.dtypes import dtype_info
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.reference.elementwise import two_product, two_sum
from crosscheck.reference.gemm import _stacked_float64, filters
from crosscheck.reference.geometry import grouped_input, grouped_weight, kernel_offsets, ungroup, window
from crosscheck.reference.result import ReferenceResult
from crosscheck.reference.stacked import narrow


def _grouped_cotangent(g: np.ndarray, spec: ConvSpec, dtype: type) -> np.ndarray:
    """(N, C_out, *out) -> (N, G, C_out/G, *out)."""
    return g.astype(dtype).reshape(spec.batch, spec.groups, spec.out_channels // spec.groups, *spec.out_size)


def _crop(grad_pad: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """(N, G, Cg, *padded) -> (N, C_in, *in_size): what lands on the padding belongs to no input."""
    index = (slice(None),) * 3 + tuple(slice(lo, lo + n) for (lo, _), n in zip(spec.pads, spec.in_size))
    return ungroup(grad_pad[index])


def _padded_shape(spec: ConvSpec) -> tuple[int, ...]:
    cg = spec.in_channels // spec.groups
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(spec.in_size, spec.pads))
    return (spec.batch, spec.groups, cg, *padded)


def _scatter_sum(spec: ConvSpec, gg: np.ndarray, wg: np.ndarray) -> np.ndarray:
    """Σ over taps and output channels of g·w, scattered back onto the padded input positions."""
    acc = np.zeros(_padded_shape(spec), dtype=gg.dtype)
    for off in kernel_offsets(spec):
        # `window` is a strided view: adding into it lands each product on m·stride + u·dilation.
        window(acc, spec, off)[...] += np.einsum("ngo...,goc->ngc...", gg, wg[(...,) + off])
    return acc


def _input_gradient_dd(spec: ConvSpec, gg: np.ndarray, wg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hi = np.zeros(_padded_shape(spec))
    lo = np.zeros(_padded_shape(spec))
    spatial = (None,) * spec.rank
    for off in kernel_offsets(spec):
        hi_view, lo_view = window(hi, spec, off), window(lo, spec, off)
        for o in range(gg.shape[2]):
            a = gg[:, :, o][:, :, None]  # (N, G, 1, *out)
            b = wg[:, o][(None, slice(None), slice(None)) + off][(...,) + spatial]  # (1, G, Cg, 1...)
            p, pe = two_product(a, b)
            s, se = two_sum(hi_view, p)
            hi_view[...] = s
            lo_view += se + pe
    return two_sum(hi, lo)


def _bound(dtype: str, terms: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """The reference's own error: a float64 sum of K exact products, or double-double for float64."""
    if dtype == "float64":
        # Compensated dot product (Ogita, Rump & Oishi 2005), as in the forward reference.
        return np.asarray(gamma_array(2 * terms, F64_U) ** 2 * magnitude + 2.0**-1074, dtype=np.float64)
    return np.asarray(gamma_array(terms, F64_U) * magnitude, dtype=np.float64)


def _rounded_up(magnitude: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """M computed in float64 is itself a K-term sum: round it up past its own error."""
    k = int(terms.max(initial=0))
    return magnitude * (1 + gamma(k + 1, F64_U))


# Through the forward reference's GEMMs: each gradient is a forward correlation of rearranged operands (below),
# the same products plus exact zeros. Float32 and narrower: one float64 GEMM (products exact, only additions
# round; a zero term never rounds, so the bound keeps the true K), M in float64. Float64: the sliced paths of
# `gemm._stacked_float64`, accepted only where their bound is at most the compensated loop's γ_2K²·M (the
# gradients keep the accuracy they had); else the loops below. ~10-100× faster on layers of real networks.
_FAST_DTYPES = ("float32", "float16", "bfloat16", "float64")


def _cotangent_as_input(problem: ConvProblem, g: np.ndarray) -> ConvProblem:
    """grad_x as a forward problem: grad_x[i] = Σ_o Σ_u' z[o, i + u'·d]·w'[c, o, u'], stride 1, dilation d, where z
    holds g[m] at m·s + (k−1)·d − lo (zeros between: the stride) and w'[g·Cg + c, o, u'] = w[g·Og + o, c, k−1−u'].
    Then i + u'·d names the padded position m·s + u·d = i + lo with u = k−1−u', as in the definition; a g[m] whose
    place falls outside z reaches only padding (the crop) and is left out."""
    spec = problem.spec
    rank, groups = spec.rank, spec.groups
    og, cg = spec.out_channels // groups, spec.in_channels // groups
    lengths = tuple(n + (k - 1) * d for n, k, d in zip(spec.in_size, spec.kernel, spec.dilation))
    z = np.zeros((spec.batch, spec.out_channels, *lengths), dtype=problem.x.dtype)
    into, take = [slice(None)] * 2, [slice(None)] * 2
    geometry = zip(spec.out_size, spec.kernel, spec.dilation, spec.stride, spec.pads, lengths)
    for n_out, k, d, s, (lo, _), length in geometry:
        shift = (k - 1) * d - lo
        first = max(0, -(shift // s))  # the first m with m·s + shift ≥ 0
        stop = max(first, min(n_out, (length - 1 - shift) // s + 1))  # past the last with m·s + shift < length
        into.append(slice(first * s + shift, (stop - 1) * s + shift + 1, s) if stop > first else slice(0, 0))
        take.append(slice(first, stop))
    z[tuple(into)] = g[tuple(take)]
    spatial = tuple(range(3, 3 + rank))
    wg = problem.w.reshape(groups, og, cg, *spec.kernel)
    w2 = np.flip(wg, axis=spatial).transpose(0, 2, 1, *spatial).reshape(spec.in_channels, og, *spec.kernel)
    spec2 = ConvSpec(
        batch=spec.batch, in_channels=spec.out_channels, out_channels=spec.in_channels, in_size=lengths,
        kernel=spec.kernel, stride=(1,) * rank, dilation=spec.dilation, padding="VALID", groups=groups,
        dtype=spec.dtype,
    )  # fmt: skip
    return ConvProblem(spec2, z, np.ascontiguousarray(w2))


def _input_as_batch(problem: ConvProblem, g: np.ndarray) -> ConvProblem:
    """grad_w as a forward problem: grad_w[(g, o), c, u] = Σ_n Σ_m x_pad[n, g, c, u·d + m·s]·g[n, g, o, m] is the
    correlation of a batch of Cg inputs x''[c, (g, n)] = x_pad[n, g, c] with the kernels w''[(g, o), n] = g[n, g, o]
    (the output positions as taps), stride d and dilation s, groups G; its outputs past the kernel are cropped."""
    spec = problem.spec
    rank, groups = spec.rank, spec.groups
    og, cg = spec.out_channels // groups, spec.in_channels // groups
    xg = grouped_input(problem.x, spec, problem.x.dtype.type)  # (N, G, Cg, *padded)
    spatial = tuple(range(3, 3 + rank))
    x2 = xg.transpose(2, 1, 0, *spatial).reshape(cg, groups * spec.batch, *xg.shape[3:])
    gg = g.reshape(spec.batch, groups, og, *spec.out_size)
    w2 = gg.transpose(1, 2, 0, *spatial).reshape(spec.out_channels, spec.batch, *spec.out_size)
    spec2 = ConvSpec(
        batch=cg, in_channels=groups * spec.batch, out_channels=spec.out_channels, in_size=tuple(xg.shape[3:]),
        kernel=spec.out_size, stride=spec.dilation, dilation=spec.stride, padding="VALID", groups=groups,
        dtype=spec.dtype,
    )  # fmt: skip
    return ConvProblem(spec2, np.ascontiguousarray(x2), np.ascontiguousarray(w2))


def _through_forward(forward: ConvProblem, terms: np.ndarray, region: tuple[slice, ...]) -> ReferenceResult | None:
    """The forward reference of `forward` as a gradient: (value, low, M, bound) in its canonical layout cut to
    `region`, the bound taken with the gradient's true term counts `terms` (broadcast to that region); None where
    the float64 slices cannot reach the compensated loop's accuracy."""
    spec = forward.spec
    where = (slice(None), slice(None), *region)
    counts = np.zeros(spec.out_size)
    counts[region] = np.broadcast_to(terms[0, 0], counts[region].shape)
    if spec.dtype != "float64":
        y, mag = narrow(forward, filters(forward, np.float32), float32_moduli=False)
        y, mag = y[where], mag[where]
        return ReferenceResult(y, None, mag, _bound(spec.dtype, counts[region][None, None], mag), "gradients")
    inside = np.zeros(spec.out_size, dtype=bool)
    inside[region] = True
    strict = gamma_array(2 * counts, F64_U) ** 2
    flat = (1, 1, 1, -1)

    def target_of(mag: np.ndarray) -> np.ndarray:  # (N, G, Og, P): the gradient's own bound, nothing outside it
        return np.where(inside.reshape(flat), strict.reshape(flat) * mag + 2.0**-1074, np.inf)

    got = _stacked_float64(forward, target_of=target_of)
    if got is None:
        return None
    # The target bounds the truncation; the bound adds the double-double sum's own rounding: check all of it.
    mag, bound = got.magnitude[where], got.error_bound[where]
    if np.any(bound > strict[region][None, None] * mag + 2.0**-1074):
        return None
    low = got.low if got.low is not None else np.zeros(got.value.shape)
    return ReferenceResult(got.value[where], low[where], mag, bound, "gradients")


def _in_problem_dtype(problem: ConvProblem, g: np.ndarray) -> bool:
    """The rearranged problems hold g in the problem's dtype: a cotangent in another one would be rounded there."""
    return problem.spec.dtype in _FAST_DTYPES and np.asarray(g).dtype == problem.x.dtype


def _fast_input_gradient(problem: ConvProblem, g: np.ndarray, terms: np.ndarray) -> ReferenceResult | None:
    if not _in_problem_dtype(problem, g) or problem.spec.terms == 0:
        return None
    forward = _cotangent_as_input(problem, np.asarray(g))
    got = _through_forward(forward, terms, tuple(slice(None) for _ in problem.spec.in_size))
    return None if got is None else replace(got, method="gradients.input")


def _fast_weight_gradient(problem: ConvProblem, g: np.ndarray, terms: np.ndarray) -> ReferenceResult | None:
    spec = problem.spec
    if not _in_problem_dtype(problem, g) or spec.terms == 0 or spec.batch * math.prod(spec.out_size) == 0:
        return None
    forward = _input_as_batch(problem, np.asarray(g))
    got = _through_forward(forward, terms, tuple(slice(0, k) for k in spec.kernel))
    if got is None:
        return None

    def canonical(a: np.ndarray) -> np.ndarray:  # (Cg, C_out, *kernel) -> (C_out, Cg, *kernel)
        return np.ascontiguousarray(np.swapaxes(a, 0, 1))

    low = None if got.low is None else canonical(got.low)
    return ReferenceResult(
        canonical(got.value), low, canonical(got.magnitude), canonical(got.error_bound), "gradients.weight"
    )


def input_gradient(problem: ConvProblem, g: np.ndarray) -> ReferenceResult:
    """grad_x = convᵀ(g, w), shape (N, C_in, *in_size)."""
    spec = problem.spec
    info = dtype_info(spec.dtype)
    terms = input_gradient_terms(spec)
    fast = _fast_input_gradient(problem, g, terms)
    if fast is not None:
        return fast
    wg = grouped_weight(problem.w, spec)
    gg = _grouped_cotangent(g, spec, np.float64)
    magnitude = _rounded_up(_crop(_scatter_sum(spec, np.abs(gg), np.abs(wg)), spec), terms)
    if not info.is_float:
        value = _crop(
            _scatter_sum(spec, _grouped_cotangent(g, spec, np.int64), grouped_weight(problem.w, spec, np.int64)), spec
        )
        return ReferenceResult(value, None, magnitude, np.zeros(value.shape), "gradients.input")
    if spec.dtype == "float64":
        hi, lo = _input_gradient_dd(spec, gg, wg)
        return ReferenceResult(
            _crop(hi, spec), _crop(lo, spec), magnitude, _bound(spec.dtype, terms, magnitude), "gradients.input"
        )
    value = _crop(_scatter_sum(spec, gg, wg), spec)
    return ReferenceResult(value, None, magnitude, _bound(spec.dtype, terms, magnitude), "gradients.input")


def _correlate_with_cotangent(spec: ConvSpec, xg: np.ndarray, gg: np.ndarray) -> np.ndarray:
    """(G, C_out/G, Cg, *kernel): for each tap, the sum over batch and output positions of x·g."""
    out = np.zeros((spec.groups, spec.out_channels // spec.groups, spec.in_channels // spec.groups, *spec.kernel))
    out = out.astype(xg.dtype)
    for off in kernel_offsets(spec):
        xs = window(xg, spec, off)
        # Flattened positions: einsum will not sum over an ellipsis that is absent from the output.
        out[(...,) + off] = np.einsum("ngcp,ngop->goc", xs.reshape(*xs.shape[:3], -1), gg.reshape(*gg.shape[:3], -1))
    return out


def _weight_gradient_dd(spec: ConvSpec, xg: np.ndarray, gg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shape = (spec.groups, spec.out_channels // spec.groups, spec.in_channels // spec.groups, *spec.kernel)
    hi, lo = np.zeros(shape), np.zeros(shape)
    rank = spec.rank
    for n in range(spec.batch):
        for m in np.ndindex(*spec.out_size):
            # The window output position m reads: x_pad[m·stride + u·dilation] for every tap u.
            index = tuple(
                slice(mi * s, mi * s + (k - 1) * d + 1, d)
                for mi, s, k, d in zip(m, spec.stride, spec.kernel, spec.dilation)
            )
            xs = xg[(n, slice(None), slice(None)) + index][:, None]  # (G, 1, Cg, *kernel)
            gs = gg[(n, slice(None), slice(None)) + m][(...,) + (None,) * (rank + 1)]  # (G, Og, 1, 1...)
            p, pe = two_product(xs, gs)
            hi, se = two_sum(hi, p)
            lo += se + pe
    return two_sum(hi, lo)


def _ungroup_weight(a: np.ndarray) -> np.ndarray:
    """(G, C_out/G, Cg, *kernel) -> the canonical (C_out, Cg, *kernel)."""
    return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])


def weight_gradient(problem: ConvProblem, g: np.ndarray) -> ReferenceResult:
    """grad_w = x ⋆ g, shape (C_out, C_in/groups, *kernel)."""
    spec = problem.spec
    info = dtype_info(spec.dtype)
    terms = weight_gradient_terms(spec)[0, 0][None, None]  # (1, 1, *kernel): broadcasts over (C_out, Cg)
    fast = _fast_weight_gradient(problem, g, terms)
    if fast is not None:
        return fast
    xg = grouped_input(problem.x, spec)
    gg = _grouped_cotangent(g, spec, np.float64)
    magnitude = _rounded_up(_ungroup_weight(_correlate_with_cotangent(spec, np.abs(xg), np.abs(gg))), terms)
    if not info.is_float:
        xi, gi = grouped_input(problem.x, spec, np.int64), _grouped_cotangent(g, spec, np.int64)
        value = _ungroup_weight(_correlate_with_cotangent(spec, xi, gi))
        return ReferenceResult(value, None, magnitude, np.zeros(value.shape), "gradients.weight")
    if spec.dtype == "float64":
        hi, lo = _weight_gradient_dd(spec, xg, gg)
        return ReferenceResult(
            _ungroup_weight(hi),
            _ungroup_weight(lo),
            magnitude,
            _bound(spec.dtype, terms, magnitude),
            "gradients.weight",
        )
    value = _ungroup_weight(_correlate_with_cotangent(spec, xg, gg))
    return ReferenceResult(value, None, magnitude, _bound(spec.dtype, terms, magnitude), "gradients.weight")
