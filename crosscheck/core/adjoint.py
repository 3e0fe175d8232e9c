"""The backward pass of a convolution problem: its cotangent, and the geometry of its adjoint.

One ConvProblem (x, w and the forward geometry) defines everything the backward properties need:

- the cotangent g, shaped like conv(x, w) (N, C_out, *out_size), drawn from the problem's seed in
  its dtype, so that (spec, seed, values) still reproduce an example;
- the vector-Jacobian product of conv at (x, w): grad_x = convᵀ(g, w) and grad_w = x ⋆ g;
- the transposed convolution convᵀ(g, w) (N, C_out, *out_size) -> (N, C_in, *in_size): the adjoint of
  this very convolution, with the weight as it is, (C_out, C_in/groups, *kernel). That is PyTorch's
  conv_transpose layout (in_channels, out_channels/groups, *kernel) read with the transposed
  convolution's own names: its input channels are the forward output channels.

The transposed convolution's output size is the forward input size. Frameworks spell it with the
forward pads (lo, hi) and an `output_padding` (PyTorch, ONNX) or an explicit `output_shape`
(TensorFlow): in = (out − 1)·stride − lo − hi + dilation·(kernel − 1) + 1 + output_padding. With
0 ≤ output_padding < stride every size whose forward convolution has `out` outputs is reached, and
each is the forward problem's in_size; `output_padding` below recovers it from the spec.

PyTorch also accepts stride ≤ output_padding < dilation. Cropping one stride less at the end gives
the same output as output_padding − stride (the transposed convolution is the full one from position
lo on), so where the high pad is at least the stride that size is one of the above. Otherwise the
output runs past the last position any product lands on (zeros there), and a forward convolution of
that size has more than `out` outputs whatever its pads: it is the adjoint of no ConvSpec, so it is
pinned by a test of the PyTorch adapter rather than drawn here.
"""

from __future__ import annotations

import numpy as np

from crosscheck.core.dtypes import dtype_info
from crosscheck.core.errors import ProblemError
from crosscheck.core.padding import effective_kernel
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.core.values import exact_value_limit

# The stream of the problem's seed that the cotangent is drawn from (x and w use the seed itself).
_COTANGENT_STREAM = 1


def output_padding(spec: ConvSpec) -> tuple[int, ...]:
    """Per dimension, what the transposed convolution adds after the last stride: 0 ≤ p < stride."""
    return tuple(
        (n + lo + hi - effective_kernel(k, d)) % s
        for n, (lo, hi), k, s, d in zip(spec.in_size, spec.pads, spec.kernel, spec.stride, spec.dilation)
    )


def _hits_per_position(n: int, out: int, k: int, s: int, d: int, lo: int) -> np.ndarray:
    """How many (output position m, tap u) pairs land on each input position i = m·s + u·d − lo."""
    hits = np.zeros(n, dtype=np.int64)
    for u in range(k):
        pos = np.arange(out) * s + u * d - lo
        np.add.at(hits, pos[(pos >= 0) & (pos < n)], 1)
    return hits


def _hits_per_tap(n: int, out: int, k: int, s: int, d: int, lo: int) -> np.ndarray:
    """How many output positions read a real (not padding) input element through each tap u."""
    pos = np.arange(out)[None, :] * s + np.arange(k)[:, None] * d - lo
    return np.asarray(((pos >= 0) & (pos < n)).sum(axis=1), dtype=np.int64)


def _outer(vectors: list[np.ndarray]) -> np.ndarray:
    out = np.ones((), dtype=np.int64)
    for v in vectors:
        out = np.multiply.outer(out, v)
    return out


def input_gradient_terms(spec: ConvSpec) -> np.ndarray:
    """K per element of grad_x (shape (1, 1, *in_size)): C_out/groups times the taps that reach it.

    Products that cannot be nonzero (a tap that falls on no output position) are left out: adding
    exact zeros never rounds, so they do not enter the error bound.
    """
    per_dim = [
        _hits_per_position(n, out, k, s, d, lo)
        for n, out, k, s, d, (lo, _) in zip(
            spec.in_size, spec.out_size, spec.kernel, spec.stride, spec.dilation, spec.pads
        )
    ]
    return (spec.out_channels // spec.groups) * _outer(per_dim)[None, None]


def weight_gradient_terms(spec: ConvSpec) -> np.ndarray:
    """K per element of grad_w (shape (1, 1, *kernel)): the batch times the outputs each tap reads
    through a real input element (products with the zero padding are exact zeros)."""
    per_dim = [
        _hits_per_tap(n, out, k, s, d, lo)
        for n, out, k, s, d, (lo, _) in zip(
            spec.in_size, spec.out_size, spec.kernel, spec.stride, spec.dilation, spec.pads
        )
    ]
    return spec.batch * _outer(per_dim)[None, None]


def cotangent_limit(spec: ConvSpec) -> int | None:
    """Largest integer magnitude of an exact-mode cotangent: with x and w in make_problem's exact range,
    every partial sum of grad_x, grad_w and convᵀ(g, w) stays an integer the dtype represents.
    None when even 1 does not fit, or when the forward problem itself cannot be exact."""
    xw = exact_value_limit(spec.dtype, spec.terms)
    if xw is None:
        return None
    info = dtype_info(spec.dtype)
    budget = 2**info.significand_bits if info.is_float else 2**15
    terms = max(int(input_gradient_terms(spec).max(initial=1)), int(weight_gradient_terms(spec).max(initial=1)), 1)
    limit = min(budget // (terms * xw), 8)
    return limit if limit >= 1 else None


def cotangent(problem: ConvProblem) -> np.ndarray:
    """The cotangent g of `problem` (shape y_shape, the problem's dtype), from its seed and value kind.

    Uniform and sparse values are drawn like make_problem's (magnitudes below 2⁻⁶ become exact zeros,
    which keeps products out of float16's subnormal range); exact ones within `cotangent_limit`.
    """
    spec = problem.spec
    info = dtype_info(spec.dtype)
    rng = np.random.default_rng([problem.seed, _COTANGENT_STREAM])
    shape = spec.y_shape
    if problem.exact:
        limit = cotangent_limit(spec)
        if limit is None:
            raise ProblemError(
                f"values: exact mode is impossible for the backward pass of {spec.dtype} "
                f"with up to {max_backward_terms(spec)} terms per gradient element"
            )
        g = rng.integers(-limit, limit + 1, size=shape).astype(np.float64)
    else:
        g = rng.uniform(-2.0, 2.0, size=shape)
        g[np.abs(g) < 2.0**-6] = 0.0
        g[rng.random(shape) < (0.7 if problem.values == "sparse" else 0.1)] = 0.0
    return g.astype(info.numpy)


def max_backward_terms(spec: ConvSpec) -> int:
    return max(int(input_gradient_terms(spec).max(initial=0)), int(weight_gradient_terms(spec).max(initial=0)))
