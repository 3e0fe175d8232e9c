"""The default reference's batch-major fast paths (crosscheck.reference.stacked and gemm._stacked_float64) against the
exact oracle: the stacked im2col is the im2col matrix bit for bit, every slice level's GEMM is exact, and each float64
path (one slice plus a rounded tail; s slice levels; the per-column slices) stays within its own bound, which stays
within its share of the float64 bound it judges, on random and adversarial values."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crosscheck import ConvProblem, ConvSpec, make_problem
from crosscheck.core.bounds import F64_U, gamma
from crosscheck.reference import ReferenceResult, direct, reference
from crosscheck.reference.geometry import grouped_input
from crosscheck.reference.stacked import gather, stacked_columns
from crosscheck.strategies import conv_problems

# The package re-exports the function `gemm` under the module's name: reach the module itself.
gemm_module = importlib.import_module("crosscheck.reference.gemm")

small_float64 = conv_problems(max_macs=3_000, dtypes=["float64"])


def _assert_within(problem: ConvProblem, r: ReferenceResult, exact: ReferenceResult | None = None) -> None:
    exact = exact if exact is not None else direct(problem)
    assert r.low is not None and exact.low is not None
    err = np.abs((r.value - exact.value) + (r.low - exact.low))
    assert np.all(err <= r.error_bound), float(np.max(err - r.error_bound))
    judged = gamma(problem.spec.terms, F64_U) * exact.magnitude
    assert np.all(r.error_bound <= gemm_module.ACCURACY_SHARE * judged * (1 + 2.0**-20) + 2.0**-1074)
    np.testing.assert_allclose(r.magnitude, exact.magnitude, rtol=1e-9)


@given(conv_problems(max_macs=3_000, dtypes=["float64", "float32"]))
def test_stacked_columns_are_the_im2col_matrix_bit_for_bit(problem: ConvProblem) -> None:
    spec = problem.spec
    xg = grouped_input(problem.x, spec, np.float64)
    stacked = stacked_columns([xg, -xg], spec)  # (N, G, 2K, P)
    flat = gemm_module.columns(problem, np.float64)  # (G, K, N·P)
    k = spec.terms
    for part, sign in ((stacked[:, :, :k], 1.0), (stacked[:, :, k:], -1.0)):
        regrouped = np.moveaxis(part, 0, 2).reshape(spec.groups, k, -1)
        np.testing.assert_array_equal(regrouped, sign * flat)


@pytest.mark.parametrize(
    ("size", "dtype", "padded"),
    [
        ((32, 32), np.float32, True),
        ((16, 32), np.float32, False),
        ((32, 32), np.float64, True),
        ((30, 32), np.float64, False),
    ],
)
def test_unaliased_columns_are_the_same_matrix_with_rows_a_cache_line_longer_only_where_4096_bytes_divide_them(
    size: tuple[int, int], dtype: type, padded: bool
) -> None:
    spec = ConvSpec(2, 3, 4, size, (3, 3), padding=((1, 1), (1, 1)), groups=1, dtype="float32")
    xg = grouped_input(make_problem(spec, seed=1).x, spec, dtype)
    plain, unaliased = stacked_columns([xg], spec), gather(xg, spec, {}, "columns", unaliased=True)
    np.testing.assert_array_equal(unaliased, plain)
    row = unaliased.strides[2]
    assert row == (plain.strides[2] + 64 if padded else plain.strides[2])
    assert row % 4096 != 0


@settings(max_examples=40)
@given(conv_problems(max_macs=3_000, dtypes=["float64"], values=["uniform", "sparse"]), st.integers(3, 5))
def test_every_slice_level_is_an_exact_integer_sum(problem: ConvProblem, count: int) -> None:
    spec = problem.spec
    k = spec.terms
    bits = gemm_module.slice_bits(count * k)
    a = gemm_module.filters(problem, np.float64)
    xg = grouped_input(problem.x, spec, np.float64)
    ea = np.asarray(np.frexp(np.max(np.abs(a), axis=2, keepdims=True))[1], dtype=np.float64)
    ex = np.asarray(np.frexp(np.max(np.abs(xg).reshape(spec.batch, spec.groups, -1), axis=2))[1], dtype=np.float64)
    ex = ex[(slice(None), slice(None)) + (None,) * (xg.ndim - 2)]
    a_slices, _ = gemm_module.split(a, 2, bits, count, ea)
    x_slices, _ = gemm_module.split(xg, 2, bits, count, ex)
    b = stacked_columns(x_slices, spec)
    for level in range(1, count + 1):
        a_level = np.concatenate(a_slices[level - 1 :: -1], axis=2)
        got = np.matmul(a_level, b[:, :, : level * k])
        # The same sum in integers: slice i of a is a multiple of 2^(e − i·b), so a_i·2^(i·b − e) is an integer.
        ints_a = np.concatenate(
            [np.ldexp(a_slices[i - 1], (i * bits - ea).astype(np.int64)) for i in range(level, 0, -1)], axis=2
        )
        ints_x = [np.ldexp(x_slices[j - 1], (j * bits - ex).astype(np.int64)) for j in range(1, level + 1)]
        ints_b = stacked_columns(ints_x, spec)
        assert np.all(np.mod(ints_a, 1) == 0) and np.all(np.mod(ints_b, 1) == 0)
        exact = np.matmul(ints_a.astype(np.int64), ints_b.astype(np.int64))  # |Σ| ≤ level·K·2^(2b) ≤ 2^53
        quantum_shift = (ea[None] + ex.reshape(spec.batch, spec.groups, 1, 1) - (level + 1) * bits).astype(np.int64)
        np.testing.assert_array_equal(got, np.ldexp(exact.astype(np.float64), quantum_shift))


@settings(max_examples=30)
@given(small_float64)
def test_default_float64_reference_within_its_share(problem: ConvProblem) -> None:
    _assert_within(problem, reference(problem))


@pytest.mark.parametrize("path", ["tail", "levels"])
@settings(max_examples=30)
@given(problem=small_float64)
def test_each_stacked_path_within_its_share(path: str, problem: ConvProblem) -> None:
    r = gemm_module._stacked_float64(problem, tail=path == "tail")
    if r is not None:
        _assert_within(problem, r)


def _realistic(dtype: str, seed: int, **kw: object) -> ConvProblem:
    spec = ConvSpec(1, 16, 8, (7, 6), (3, 3), padding=((1, 1), (1, 1)), dtype=dtype, **kw)  # type: ignore[arg-type]
    return make_problem(spec, seed)


@pytest.mark.parametrize("levels", [False, True])
def test_the_fast_paths_are_taken_on_ordinary_values(levels: bool) -> None:
    # Uniform values and 16 channels: every element's M is far above its image's scale·K·2^(11−b).
    for seed in range(3):
        problem = _realistic("float64", seed)
        r = gemm_module._stacked_float64(problem, tail=not levels)
        assert r is not None
        _assert_within(problem, r)


@pytest.mark.parametrize("scale_exp", [-300, -30, 0, 30, 300, -600, 600])
def test_adversarial_float64_values(scale_exp: int) -> None:
    rng = np.random.default_rng(scale_exp & 0xFFFF)
    p = _realistic("float64", 7, groups=2)
    # Magnitudes over a wide range inside each row, scaled towards either end of float64.
    x = p.x * np.ldexp(1.0, rng.integers(-20, 20, size=p.x.shape) + scale_exp)
    w = p.w * np.ldexp(1.0, rng.integers(-20, 20, size=p.w.shape))
    # Cancellation: input channels 4-7 repeat 0-3 (group 0), and output channel 0's filter negates them there, so
    # its sums cancel to exact zeros.
    x[:, 4:8] = x[:, 0:4]
    w[0, 4:8] = -w[0, 0:4]
    problem = ConvProblem(p.spec, x, w)
    exact = direct(problem)
    assert exact.low is not None and np.all(exact.value[:, 0] == 0) and np.all(exact.low[:, 0] == 0)
    _assert_within(problem, reference(problem), exact)
    stacked = gemm_module._stacked_float64(problem)
    if stacked is not None:
        _assert_within(problem, stacked, exact)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("kind", ["exact", "uniform"])
def test_narrow_problems_match_the_oracle(dtype: str, kind: str) -> None:
    for kw in ({}, {"groups": 16}, {"dilation": (2, 1)}):
        spec = ConvSpec(2, 16, 16, (7, 6), (3, 3), padding=((2, 2), (1, 1)), dtype=dtype, **kw)
        problem = make_problem(spec, 3, kind)
        exact, r = direct(problem), reference(problem)
        assert r.method == "gemm"
        err = np.abs(r.value - exact.approx)
        assert np.all(err <= r.error_bound)
        assert np.all(r.magnitude >= exact.magnitude)
        if kind == "exact":  # every partial sum representable: bit for bit
            np.testing.assert_array_equal(r.value, exact.approx)


def test_one_by_one_and_three_d_layers() -> None:
    for spec in (
        ConvSpec(2, 32, 8, (5, 4), (1, 1), dtype="float64"),
        ConvSpec(1, 4, 4, (4, 5, 3), (3, 3, 3), padding=((1, 1),) * 3, stride=(2, 1, 1), dtype="float64"),
        ConvSpec(1, 4, 4, (4, 5, 3), (3, 3, 3), padding=((1, 1),) * 3, stride=(2, 1, 1), dtype="float32"),
    ):
        problem = make_problem(spec, 1)
        exact, r = direct(problem), reference(problem)
        if spec.dtype == "float64":
            assert gemm_module._stacked_float64(problem) is not None
            _assert_within(problem, r, exact)
        else:
            assert np.all(np.abs(r.value - exact.approx) <= r.error_bound)


def test_the_range_checks_ignore_zeros_and_see_every_other_modulus() -> None:
    from crosscheck.reference.gemm import _float32_within, _moduli_within

    limits = (2.0**-60, 2.0**56)
    base = np.array([0.0, -0.0, 1.5, -(2.0**-60), 2.0**56, -(2.0**56)], dtype=np.float32)
    assert _moduli_within(limits, np.abs(base), np.zeros(0, np.float32))
    assert _float32_within(limits, base, np.zeros(0, np.float32), np.zeros((2, 3), np.float32))
    for bad in (2.0**-61, -(2.0**-100), 2.0**-149, 2.0**57, -(2.0**60), np.inf, -np.inf):
        assert not _moduli_within(limits, np.abs(base), np.abs(np.append(base, np.float32(bad))))
        assert not _float32_within(limits, base, np.append(base, np.float32(bad)))
        assert not _float32_within(limits, np.append(base, np.float32(bad))[::-2][::-1])  # strided
    assert not _float32_within(limits, np.append(base, np.float32(np.nan)))
    assert not _float32_within(limits, np.append(base, -np.float32(np.nan)))


def test_an_unpadded_input_is_used_as_it_is_and_cannot_be_written_through() -> None:
    # A 1×1 layer's input is its own im2col matrix: no copy, and no caller may change the problem through the view.
    spec = ConvSpec(2, 4, 6, (5, 5), (1, 1), groups=2, dtype="float64")
    problem = make_problem(spec, seed=2)
    xg = grouped_input(problem.x, spec, np.float64)
    assert xg.shape == (2, 2, 2, 5, 5) and np.shares_memory(xg, problem.x)
    with pytest.raises(ValueError, match="read-only"):
        xg[0, 0, 0, 0, 0] = 1.0
    assert problem.x.flags.writeable
    padded = grouped_input(problem.x, spec.with_(padding=((1, 1), (0, 0))), np.float64)
    assert padded.flags.writeable and not np.shares_memory(padded, problem.x)


def test_chunks_cover_every_image_and_group_once_within_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    stacked_module = importlib.import_module("crosscheck.reference.stacked")
    for budget in (1, 3 * 8 * 9 * 25, 2 * 6 * 8 * 9 * 25, 1 << 30):
        monkeypatch.setattr(stacked_module, "_CHUNK_BYTES", budget)
        spec = ConvSpec(5, 6, 6, (5, 5), (3, 3), padding=((1, 1), (1, 1)), groups=6, dtype="float32")
        seen = np.zeros((spec.batch, spec.groups), int)
        per_group = spec.terms * 25 * 8
        for images, groups in stacked_module.chunks(spec):
            seen[images, groups] += 1
            size = len(range(spec.batch)[images]) * len(range(spec.groups)[groups]) * per_group
            assert size <= max(budget, per_group)
        assert np.all(seen == 1), budget


@pytest.mark.parametrize("chunk_bytes", [1, 1 << 40])
@pytest.mark.parametrize("one_gather_rows", [0, 1 << 20])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_narrow_in_chunks_and_by_either_gather_matches_the_oracle(
    monkeypatch: pytest.MonkeyPatch, chunk_bytes: int, one_gather_rows: int, dtype: str
) -> None:
    # chunk_bytes 1: one group of one image per GEMM; one_gather_rows picks the float32 gather or the two gathers.
    stacked_module = importlib.import_module("crosscheck.reference.stacked")
    monkeypatch.setattr(stacked_module, "_CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(stacked_module, "_ONE_GATHER_ROWS", one_gather_rows)
    for kind, spec in (
        ("exact", ConvSpec(3, 8, 8, (6, 5), (3, 3), padding=((1, 1), (2, 0)), groups=8, dtype=dtype)),
        ("exact", ConvSpec(3, 8, 6, (6, 5), (3, 3), padding=((1, 1), (1, 1)), groups=2, dtype=dtype)),
        ("uniform", ConvSpec(2, 16, 6, (4, 5), (1, 1), dtype=dtype)),  # columns are x itself, read-only
        ("uniform", ConvSpec(2, 4, 4, (4, 5, 3), (3, 3, 3), padding=((1, 1),) * 3, stride=(2, 1, 1), dtype=dtype)),
    ):
        problem = make_problem(spec, 5, kind)
        exact, r = direct(problem), reference(problem)
        assert np.all(np.abs(r.value - exact.approx) <= r.error_bound)
        assert np.all(r.magnitude >= exact.magnitude)
        assert np.all(r.magnitude <= exact.magnitude * (1 + 2 * spec.terms * 2.0**-24))
        if kind == "exact":
            np.testing.assert_array_equal(r.value, exact.approx)
    # A modulus outside the float32 GEMM's safe range: M in float64, y still in chunks.
    spec = ConvSpec(2, 4, 4, (5, 5), (3, 3), padding=((1, 1), (1, 1)), groups=2, dtype="float32")
    p = make_problem(spec, 6)
    x = p.x.copy()
    x[1, 3, 2, 2] = np.float32(2.0**-100)
    problem = ConvProblem(spec, x, p.w)
    exact, r = direct(problem), reference(problem)
    assert np.all(np.abs(r.value - exact.approx) <= r.error_bound)
    np.testing.assert_allclose(r.magnitude, exact.magnitude, rtol=1e-12)
