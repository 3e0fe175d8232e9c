"""Input values: generated directly in the problem's dtype from a seed, so a seed reproduces them."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from crosscheck.core.dtypes import dtype_info
from crosscheck.core.errors import ProblemError
from crosscheck.core.problem import ConvProblem, ConvSpec

VALUE_KINDS = ("uniform", "sparse", "exact")

# Magnitudes below this become exact zeros: products then stay far above float16's subnormal range,
# and zeros (which every real input has) get exercised.
_ZERO_BELOW = 2.0**-6
_RANGE = 2.0


def exact_value_limit(dtype: str, terms: int) -> int | None:
    """Largest integer magnitude L such that K products of values in [-L, L] sum exactly in `dtype`.

    Every partial sum is then an integer of magnitude at most K·L², which must fit the significand.
    Complex values are Gaussian integers (both parts in [-L, L]); a component of a sum of products
    then stays below 2·K·L², and the 3M (Gauss) method's Σ(a+b)(c+d) below 4·K·L², which must fit.
    None when even L = 1 does not fit (bfloat16 with K > 256, for example).
    """
    info = dtype_info(dtype)
    budget = 2**info.significand_bits if info.is_float else 2**15  # ints: stay far from overflow
    per_term = 4 * terms if info.is_complex else terms
    limit = math.isqrt(budget // per_term) if per_term <= budget else 0
    limit = min(limit, 8)
    return limit if limit >= 1 else None


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], zero_fraction: float) -> np.ndarray:
    v = rng.uniform(-_RANGE, _RANGE, size=shape)
    v[np.abs(v) < _ZERO_BELOW] = 0.0
    v[rng.random(shape) < zero_fraction] = 0.0
    return v


def _integers(rng: np.random.Generator, shape: tuple[int, ...], limit: int) -> np.ndarray:
    return rng.integers(-limit, limit + 1, size=shape).astype(np.float64)


def _complex_pair(draw: Callable[[tuple[int, ...]], np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    # Real and imaginary parts drawn independently (each with the real generator's zeros).
    return draw(shape) + 1j * draw(shape)


def make_problem(spec: ConvSpec, seed: int, values: str = "uniform") -> ConvProblem:
    """Build x and w for `spec` from `seed`; `values` is uniform, sparse (mostly zeros) or exact.

    Complex dtypes get independent real and imaginary parts (Gaussian integers in exact mode)."""
    if values not in VALUE_KINDS:
        raise ProblemError(f"values: expected one of {', '.join(VALUE_KINDS)}, got {values!r}")
    info = dtype_info(spec.dtype)
    rng = np.random.default_rng(seed)
    if values == "exact" or not info.is_float:
        limit = exact_value_limit(spec.dtype, spec.terms)
        if limit is None:
            raise ProblemError(
                f"values: exact mode is impossible for {spec.dtype} with K={spec.terms} terms per output"
            )
        draw = functools.partial(_integers, rng, limit=limit)
    else:
        draw = functools.partial(_uniform, rng, zero_fraction=0.7 if values == "sparse" else 0.1)
    if info.is_complex:
        x, w = _complex_pair(draw, spec.x_shape), _complex_pair(draw, spec.w_shape)
    else:
        x, w = draw(spec.x_shape), draw(spec.w_shape)
    dt = info.numpy
    return ConvProblem(spec, x.astype(dt), w.astype(dt), seed=seed, values=values)


def make_asymmetric(problem: ConvProblem) -> ConvProblem:
    """The problem with its kernel changed in one corner if flipping would leave it unchanged.

    Only an asymmetric kernel can tell correlation from convolution. The first tap moves by one
    (towards zero if it sits at the value limit), so exact-mode values stay exact.
    """
    axes = tuple(range(2, 2 + problem.spec.rank))
    if not np.array_equal(problem.w, np.flip(problem.w, axis=axes)):
        return problem
    w = problem.w.copy()
    first = float(np.real(w.flat[0]))  # complex kernels: the real part moves
    w.flat[0] += -1 if first >= 1 else 1
    return problem.with_weight(w, asymmetric=True)
