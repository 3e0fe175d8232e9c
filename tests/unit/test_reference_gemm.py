"""The default reference (BLAS with error-free float64 slices): exact slice products, its own error
bound far below the float64 bound it judges, and the fallbacks where slicing is unsafe."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from crosscheck import ConvProblem, ConvSpec, make_problem
from crosscheck.core.bounds import F64_U, gamma
from crosscheck.reference import direct, reference
from crosscheck.reference.gemm import ACCURACY_SHARE, slice_bits, split

# The range `split` is used in (gemm checks it first): far from float64's overflow and underflow.
finite = st.one_of(st.just(0.0), st.floats(1e-100, 1e100), st.floats(-1e100, -1e-100))


@given(hnp.arrays(np.float64, (3, 4, 7), elements=finite), st.integers(1, 5))
def test_slices_sum_back_exactly_and_stay_on_their_quantum(a: np.ndarray, count: int) -> None:
    bits = slice_bits(7)
    slices, rest = split(a, 2, bits, count)
    total = rest.copy()
    for s in reversed(slices):
        total = total + s  # smallest first: every partial sum is exact (each is a's head plus a remainder)
    np.testing.assert_array_equal(total, a)
    _, e = np.frexp(np.max(np.abs(a), axis=2, keepdims=True))
    for i, s in enumerate(slices, start=1):
        quantum = np.ldexp(1.0, e - i * bits)
        np.testing.assert_array_equal(np.mod(s, quantum), 0)
        assert np.all(np.abs(s) <= 2 * np.abs(a))
    assert np.all(np.abs(rest) <= np.ldexp(1.0, e - count * bits - 1))


@given(st.integers(1, 4096))
def test_slice_products_cannot_round(terms: int) -> None:
    bits = slice_bits(terms)
    # K products of (b+1)-bit integers: |Σ| ≤ K·2^(2b) must fit float64's 53-bit significand.
    assert terms * 2.0 ** (2 * bits) <= 2.0**53


def _wide(spec: ConvSpec, seed: int, exponents: tuple[int, int]) -> ConvProblem:
    rng = np.random.default_rng(seed)
    p = make_problem(spec, seed)
    scale_x = np.ldexp(1.0, rng.integers(*exponents, size=p.x.shape))
    scale_w = np.ldexp(1.0, rng.integers(*exponents, size=p.w.shape))
    return ConvProblem(spec, p.x * scale_x, p.w * scale_w)


@pytest.mark.parametrize("exponents", [(0, 1), (-20, 20), (-200, 200), (-700, 400), (-1070, -1000)])
def test_float64_within_its_share_of_the_bound_even_for_wide_values(exponents: tuple[int, int]) -> None:
    spec = ConvSpec(2, 4, 3, (6, 5), (3, 2), groups=1, padding=((1, 1), (0, 1)), dtype="float64")
    for seed in range(3):
        problem = _wide(spec, seed, exponents)
        exact, r = direct(problem), reference(problem)
        assert r.low is not None and exact.low is not None
        err = np.abs((r.value - exact.value) + (r.low - exact.low))
        assert np.all(err <= r.error_bound)
        judged = gamma(spec.terms, F64_U) * exact.magnitude
        if r.method == "gemm":
            assert np.all(r.error_bound <= ACCURACY_SHARE * judged * (1 + 2.0**-20) + 2.0**-1074)
        # Rows spanning hundreds of binades would need more slices than MAX_SLICES, and exponents near
        # float64's ends would overflow σ or underflow a product's quantum: the element-wise path then.
        assert r.method == ("gemm" if exponents[1] - exponents[0] <= 40 else r.method)


def test_sparse_windows_do_not_loosen_the_bound() -> None:
    # Most windows of a sparse input hold only tiny values next to a row's large one: the per-element
    # c·M cap keeps the reference's bound proportional to each element's own M.
    spec = ConvSpec(1, 8, 4, (12,), (3,), dtype="float64")
    p = make_problem(spec, 5, "sparse")
    x = p.x.copy()
    x[0, 0, 0] = 2.0**30
    problem = ConvProblem(spec, x, p.w)
    r, exact = reference(problem), direct(problem)
    assert r.method == "gemm"
    assert np.all(r.error_bound <= ACCURACY_SHARE * gamma(spec.terms, F64_U) * exact.magnitude * 1.01 + 2.0**-1074)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "complex64", "int32", "complex128"])
def test_other_dtypes_agree_with_the_oracle(dtype: str) -> None:
    spec = ConvSpec(2, 6, 4, (5, 7), (2, 3), stride=(2, 1), dilation=(1, 2), groups=2, dtype=dtype)
    for seed in range(3):
        problem = make_problem(spec, seed)
        exact, r = direct(problem), reference(problem)
        assert r.method == ("elementwise" if dtype == "int32" else "gemm")
        low = 0 if r.low is None else r.low
        exact_low = 0 if exact.low is None else exact.low
        err = np.abs((r.value - exact.value) + (low - exact_low))
        assert np.all(err <= r.error_bound)
        if dtype == "complex128":  # a small share of the complex float64 bound √2·γ_2K(u)·M
            assert np.all(r.error_bound <= 8 * ACCURACY_SHARE * gamma(2 * spec.terms, F64_U) * exact.magnitude + 1e-300)


@pytest.mark.parametrize("scale", [2.0**-100, 2.0**100])
def test_magnitude_leaves_float32_where_its_products_would_leave_the_normal_range(scale: float) -> None:
    spec = ConvSpec(1, 3, 2, (6,), (3,), dtype="bfloat16")
    p = make_problem(spec, 2)
    problem = ConvProblem(spec, (p.x.astype(np.float64) * scale).astype(p.x.dtype), p.w)
    exact, r = direct(problem), reference(problem)
    np.testing.assert_allclose(r.magnitude, exact.magnitude, rtol=1e-12)  # the float64 path: as tight as ever
    assert np.all(np.abs(r.approx - exact.approx) <= r.error_bound)
