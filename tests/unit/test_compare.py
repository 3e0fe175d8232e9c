from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from crosscheck import ConvSpec, compare, make_problem
from crosscheck.core.bounds import gamma
from crosscheck.reference import reference


def problem(dtype: str = "float32", values: str = "uniform"):  # type: ignore[no-untyped-def]
    spec = ConvSpec(2, 3, 4, (6, 5), (3, 2), padding=((1, 0), (0, 1)), dtype=dtype)
    return make_problem(spec, 7, values)


def test_reference_rounded_to_the_dtype_passes() -> None:
    for dtype in ("float64", "float32", "float16", "bfloat16"):
        p = problem(dtype)
        y = reference(p).approx.astype(p.x.dtype)
        v = compare(p, y)
        assert v.passed, v.message
        assert v.max_ratio <= 1


def test_shape_is_checked_before_values() -> None:
    p = problem()
    v = compare(p, np.zeros((2, 4, 5, 4), np.float32))
    assert not v.passed and v.stage == "shape"
    assert v.message == "Shape mismatch: expected (2, 4, 5, 5), got (2, 4, 5, 4)"


def test_dtype_is_checked_before_values() -> None:
    p = problem()
    y = reference(p).approx  # float64, right values
    v = compare(p, y)
    assert not v.passed and v.stage == "dtype"
    assert "expected float32, got float64" in v.message


def test_one_bad_element_is_located_and_measured() -> None:
    p = problem()
    ref = reference(p)
    y = ref.approx.astype(np.float32)
    y[1, 2, 3, 4] += 0.01
    v = compare(p, y, ref)
    assert not v.passed
    assert v.mismatched == 1 and v.total == y.size
    assert "Mismatched elements: 1 / 200 (0.5%)" in v.message
    assert "at index (1, 2, 3, 4)" in v.message
    assert "Greatest error-to-bound ratio" in v.message
    assert "K=18" in v.message


def test_the_bound_is_the_documented_formula() -> None:
    p = problem()
    ref = reference(p)
    u32 = 2.0**-24
    k = p.spec.terms
    y = ref.approx
    expected = u32 * np.abs(y) + (1 + u32) * gamma(k, u32) * ref.magnitude + np.finfo(np.float32).tiny
    from crosscheck.checks.forward import bound_for

    got = bound_for(p, ref, u32)
    assert np.all(got >= expected)
    assert np.all(got <= expected * (1 + 1e-12) + ref.error_bound)


def test_error_just_past_the_bound_fails_and_just_inside_passes() -> None:
    p = problem("float64")
    ref = reference(p)
    from crosscheck.checks.forward import bound_for

    b = bound_for(p, ref, 2.0**-53)
    i = (0, 0, 0, 0)
    inside = ref.approx.copy()
    inside[i] = ref.approx[i] + 0.5 * b[i]
    assert compare(p, inside, ref).passed
    outside = ref.approx.copy()
    outside[i] = ref.approx[i] + 2 * b[i]
    assert not compare(p, outside, ref).passed


def test_exact_mode_requires_bit_equality() -> None:
    p = problem("float16", "exact")
    ref = reference(p)
    y = ref.approx.astype(np.float16)
    assert compare(p, y, ref).passed
    y[0, 0, 0, 0] = np.nextafter(y[0, 0, 0, 0], np.float16(np.inf))
    v = compare(p, y, ref)
    assert not v.passed and v.exact
    assert "up to 0 allowed" in v.message


def test_nan_where_reference_is_finite_fails() -> None:
    p = problem("bfloat16")
    y = reference(p).approx.astype(ml_dtypes.bfloat16)
    y[0, 1, 2, 3] = np.nan
    v = compare(p, y)
    assert not v.passed and v.mismatched == 1


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integers_compare_exactly(dtype: str) -> None:
    p = problem(dtype)
    ref = reference(p)
    y = ref.value.astype(dtype)
    assert compare(p, y, ref).passed
    y[0, 0, 0, 0] += 1
    assert not compare(p, y, ref).passed
