"""Complex dtypes: values, the reference, the conjugation conventions (docs/semantics.md), and what each
framework does with complex input (measured facts, re-checked here)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crosscheck.backends.base import Capabilities
from crosscheck.checks.forward import compare
from crosscheck.core.dtypes import COMPLEX_DTYPES, dtype_info
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.core.values import exact_value_limit, make_problem
from crosscheck.reference import direct, reference
from crosscheck.strategies import conv_problems

small_complex = conv_problems(Capabilities(dtypes=COMPLEX_DTYPES), max_macs=2_000)


@given(small_complex)
def test_reference_views_agree_with_the_exact_oracle_on_complex(problem: ConvProblem) -> None:
    exact = direct(problem)
    for method in ("elementwise", "im2col", "fft"):
        r = reference(problem, method)
        assert r.value.dtype == np.complex128
        err = (
            np.abs(r.approx - exact.approx) if r.low is None else np.abs((r.value - exact.value) + (r.low - exact.low))
        )
        assert np.all(err <= r.error_bound), (method, float(np.max(err - r.error_bound)))
        np.testing.assert_allclose(r.magnitude, exact.magnitude, rtol=1e-9)


@given(st.sampled_from(COMPLEX_DTYPES), st.integers(1, 600))
def test_exact_complex_values_keep_every_partial_sum_exact(dtype: str, terms: int) -> None:
    # Gaussian integers in [-L, L]: components of Σ x·w below 2KL², the 3M method's Σ(a+b)(c+d) below 4KL².
    limit = exact_value_limit(dtype, terms)
    assert limit is not None
    assert 4 * terms * limit**2 <= 2 ** dtype_info(dtype).significand_bits


def test_complex_values_have_both_parts_and_exact_ones_are_gaussian_integers() -> None:
    spec = ConvSpec(2, 3, 2, (7,), (3,), dtype="complex64")
    p = make_problem(spec, 5)
    assert p.x.dtype == np.complex64 and np.any(p.x.imag != 0) and np.any(p.x.real != 0)
    e = make_problem(spec, 5, "exact")
    assert e.exact and np.all(e.w.real == np.round(e.w.real)) and np.all(e.w.imag == np.round(e.w.imag))
    assert np.array_equal(reference(e).approx, direct(e).approx)


def test_signal_correlate_conjugates_and_the_cnn_correlation_does_not() -> None:
    """docs/semantics.md: numpy.correlate and scipy.signal.correlate (and scipy.ndimage.correlate) compute
    Σ x·conj(w); scipy.signal.convolve conjugates nothing. Measured with NumPy 2.4 / SciPy."""
    signal = pytest.importorskip("scipy.signal")
    ndimage = pytest.importorskip("scipy.ndimage")
    x = np.array([1 + 2j, 3 - 1j, 2 + 0j, 1j])
    w = np.array([1 - 1j, 2 + 3j])
    cnn = np.array([np.sum(x[i : i + 2] * w) for i in range(3)])
    conj = np.array([np.sum(x[i : i + 2] * np.conj(w)) for i in range(3)])
    assert not np.allclose(cnn, conj)
    np.testing.assert_array_equal(np.correlate(x, w, "valid"), conj)
    np.testing.assert_array_equal(signal.correlate(x, w, mode="valid", method="direct"), conj)
    np.testing.assert_array_equal(signal.convolve(x, w[::-1], mode="valid", method="direct"), cnn)
    full = ndimage.correlate(x, w, mode="constant", cval=0)
    np.testing.assert_array_equal(full[1:], conj)  # ndimage centres the 2-tap kernel at index 1


# One complex product that the 3M (Gauss) method gets wrong by 2.16 × the conventional complex bound
# (tests/unit/test_bounds_extended.py found it by a random search).
GAUSS = ConvSpec(1, 1, 1, (1,), (1,), dtype="complex64")
GAUSS_PROBLEM = ConvProblem(
    GAUSS, np.array([[[1.6057287 + 1.1194015j]]], np.complex64), np.array([[[-1.0977291 - 1.0184429j]]], np.complex64)
)


def test_torch_computes_complex_convolutions_by_the_3m_method() -> None:
    torch = pytest.importorskip("torch")
    from crosscheck.backends import get_backend

    rng = np.random.default_rng(1)
    n = 500
    a, b, c, d = (rng.uniform(-2, 2, n).astype(np.float32) for _ in range(4))
    x, w = (a + 1j * b).astype(np.complex64), (c + 1j * d).astype(np.complex64)
    y = torch.nn.functional.conv1d(torch.from_numpy(x.reshape(1, n, 1)), torch.from_numpy(w.reshape(n, 1, 1)), groups=n)
    y = y.numpy().reshape(n)
    f = np.float32
    np.testing.assert_array_equal(y.real, f(f(a * c) - f(b * d)))
    np.testing.assert_array_equal(y.imag, f(f(f(f(a + b) * f(c + d)) - f(a * c)) - f(b * d)))
    # Hence the adapter's declaration, without which this one product would fail:
    backend = get_backend("torch")
    assert backend.capabilities().complex_method == "3m"
    out = backend.run(GAUSS_PROBLEM)
    assert not compare(GAUSS_PROBLEM, out, complex_method="conventional").passed
    assert compare(GAUSS_PROBLEM, out, complex_method="3m").passed


@pytest.mark.parametrize("name", ["numpy", "scipy.correlate", "scipy.convolve", "scipy.ndimage", "scipy.fft", "jax"])
def test_backends_with_conventional_complex_products(name: str) -> None:
    from crosscheck.backends import BackendUnavailable, get_backend

    try:
        backend = get_backend(name)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    caps = backend.capabilities()
    assert set(COMPLEX_DTYPES) <= set(caps.dtypes) and caps.complex_method == "conventional"
    # scipy.ndimage takes only the pads it computes without waste (SAME's).
    padding = ((1, 0), (0, 1)) if "explicit" in caps.padding else "SAME"
    p = make_problem(ConvSpec(2, 4, 6, (6, 5), (3, 2), groups=2, padding=padding, dtype="complex128"), 3)
    assert caps.refuses(p.spec) is None
    v = compare(p, backend.run(p), bound_kind=caps.bound)
    assert v.passed, v.message


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("tensorflow", "Value for attr 'T' of complex64 is not in the list of allowed values"),
        ("onnxruntime", "INVALID_GRAPH"),
    ],
)
def test_frameworks_without_complex_convolutions_say_so_in_their_words(name: str, words: str) -> None:
    from crosscheck.backends import BackendUnavailable, get_backend

    try:
        backend = get_backend(name)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    caps = backend.capabilities()
    assert not set(COMPLEX_DTYPES) & set(caps.dtypes)
    reasons = [r for f, r in caps.unsupported if "complex" in f]
    assert reasons and words in reasons[0]
