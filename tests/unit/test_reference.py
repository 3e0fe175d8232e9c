"""The reference's views agree with the exact oracle within their own bounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crosscheck import ConvProblem, ConvSpec, make_problem
from crosscheck.reference import direct, elementwise, reference
from crosscheck.strategies import conv_problems

SEED_A = [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
SEED_B = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
SEED_C = [[4, 3, 4], [2, 4, 3], [2, 3, 4]]

small = conv_problems(max_macs=3_000)


def seed_problem(dtype: str = "float64") -> ConvProblem:
    spec = ConvSpec(1, 1, 1, (5, 5), (3, 3), dtype=dtype)
    return ConvProblem(spec, np.array(SEED_A, dtype=dtype)[None, None], np.array(SEED_B, dtype=dtype)[None, None])


@pytest.mark.parametrize("method", ["direct", "gemm", "elementwise", "im2col", "fft"])
def test_seed_worked_example(method: str) -> None:
    r = reference(seed_problem(), method)
    np.testing.assert_allclose(r.approx[0, 0], SEED_C, rtol=0, atol=1e-12)


def test_seed_example_is_dot_product_of_window_and_filter() -> None:
    a, b = np.array(SEED_A), np.array(SEED_B)
    for m in range(3):
        for n in range(3):
            window = a[m : m + 3, n : n + 3]
            assert np.dot(window.ravel(), b.ravel()) == (window * b).sum() == SEED_C[m][n]


@given(small)
def test_views_agree_with_the_exact_oracle(problem: ConvProblem) -> None:
    exact = direct(problem)
    for method in ("gemm", "elementwise", "im2col", "fft"):
        r = reference(problem, method)
        err = (
            np.abs(r.approx - exact.approx) if r.low is None else np.abs((r.value - exact.value) + (r.low - exact.low))
        )
        assert np.all(err <= r.error_bound), (method, float(np.max(err - r.error_bound)))
        if method == "gemm" and problem.spec.dtype in ("float32", "float16", "bfloat16"):
            # M from a float32 GEMM, rounded up: never below the exact M, at most ~K·2⁻²⁴ above it.
            assert np.all(r.magnitude >= exact.magnitude)
            assert np.all(r.magnitude <= exact.magnitude * (1 + problem.spec.terms * 2.0**-22))
        else:
            np.testing.assert_allclose(r.magnitude, exact.magnitude, rtol=1e-9)


@given(conv_problems(max_macs=3_000, dtypes=["int32", "int64"]))
def test_direct_loop_and_elementwise_are_exact_on_integers(problem: ConvProblem) -> None:
    exact = direct(problem)
    assert exact.value.dtype == np.int64
    np.testing.assert_array_equal(elementwise(problem).value, exact.value)
    # The oracle itself, by brute force on a flattened window: one more independent computation.
    spec = problem.spec
    if spec.rank == 1 and spec.groups == 1:
        xp = np.pad(problem.x.astype(np.int64), [(0, 0), (0, 0), *spec.pads])
        for m in range(spec.out_size[0]):
            start = m * spec.stride[0]
            idx = start + np.arange(spec.kernel[0]) * spec.dilation[0]
            window = xp[:, :, idx].reshape(spec.batch, -1)
            expected = window @ problem.w.astype(np.int64).reshape(spec.out_channels, -1).T
            np.testing.assert_array_equal(exact.value[:, :, m], expected)


@pytest.mark.parametrize("method", ["gemm", "elementwise"])
@given(problem=conv_problems(max_macs=3_000, dtypes=["float64"], values=["uniform"]))
def test_float64_reference_is_more_accurate_than_float64(method: str, problem: ConvProblem) -> None:
    exact = direct(problem)
    dd = reference(problem, method)
    assert dd.low is not None and exact.low is not None
    err = np.abs((dd.value - exact.value) + (dd.low - exact.low))
    # Double-double: error far below one float64 ulp of the result (not just below γ_K·M).
    assert np.all(err <= dd.error_bound)
    assert np.all(err <= 2.0**-60 * np.maximum(np.abs(exact.value), exact.magnitude) + 2.0**-1074)


@given(st.integers(0, 2**32 - 1))
def test_make_problem_is_reproducible_from_its_seed(seed: int) -> None:
    spec = ConvSpec(2, 3, 4, (6,), (3,), dtype="bfloat16")
    a, b = make_problem(spec, seed), make_problem(spec, seed)
    assert a.x.dtype.name == "bfloat16" and a.x.shape == spec.x_shape
    np.testing.assert_array_equal(a.x.astype(np.float32), b.x.astype(np.float32))
    np.testing.assert_array_equal(a.w.astype(np.float32), b.w.astype(np.float32))


def test_the_direct_oracles_bound_covers_what_a_float64_pair_cannot_hold() -> None:
    # 216 float64 products per output: the exact sum needs more bits than hi + lo hold (it was off by 2⁻¹⁰² here while
    # its bound said 2⁻¹⁰⁷⁴); the bound is now the pair's own residual.
    from fractions import Fraction

    spec = ConvSpec(2, 1, 1, (6, 6, 6), (6, 6, 6), dtype="float64")
    problem = make_problem(spec, 0)
    got = direct(problem)
    assert got.low is not None
    for n in range(2):
        exact = sum(
            (Fraction(float(a)) * Fraction(float(b)) for a, b in zip(problem.x[n].ravel(), problem.w[0].ravel())),
            Fraction(0),
        )
        pair = Fraction(float(got.value[n, 0, 0, 0, 0])) + Fraction(float(got.low[n, 0, 0, 0, 0]))
        assert abs(pair - exact) <= Fraction(float(got.error_bound[n, 0, 0, 0, 0]))


def test_the_normwise_bound_of_a_dilated_filter_is_that_of_its_zero_inserted_form_without_building_it() -> None:
    # A realistic run OOM-killed itself (23 GB) building the zero-inserted 2048→256 3×3 complex128 filter at rate 12
    # for a failure message's normwise hint. The zeros change no norm: the bound is the dense equivalent's, and the
    # largest array the bound allocates stays below that zero-inserted filter's size.
    import tracemalloc

    from crosscheck.reference.fft import normwise_bound

    spec = ConvSpec(1, 8, 8, (60, 60), (3, 3), dilation=(24, 24), dtype="complex128")
    problem = make_problem(spec, seed=3)
    dense_w = np.zeros((8, 8, 49, 49), np.complex128)
    dense_w[..., ::24, ::24] = problem.w
    dense = ConvProblem(spec.with_(kernel=(49, 49), dilation=(1, 1)), problem.x, dense_w)
    tracemalloc.start()
    try:
        bound = normwise_bound(problem, 2.0**-53)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(bound, normwise_bound(dense, 2.0**-53))
    assert peak < dense_w.nbytes
