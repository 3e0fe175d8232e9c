"""Meta-tests: the property suite must catch deliberately wrong convolutions, and pass right ones."""

from __future__ import annotations

import pytest
import wrong_convolutions as wc

from crosscheck.backends.function_backend import FunctionBackend
from crosscheck.properties import PROPERTIES
from crosscheck.runner import run_property

DTYPES = ("float64", "float32", "float16", "bfloat16")


@pytest.mark.parametrize("name", sorted(wc.WRONG))
def test_wrong_convolution_is_caught(name: str) -> None:
    backend = FunctionBackend(wc.WRONG[name], name, dtypes=DTYPES)
    result = run_property(backend, PROPERTIES["matches_reference"], profile="ci")
    assert result.status == "failed", f"{name} slipped through {result.tally.examples} examples"
    (failure,) = result.failures
    assert "Mismatched elements" in failure["message"] or "Shape mismatch" in failure["message"]
    assert "make_problem" in failure["reproducer"]


def test_textbook_convolution_is_not_cross_correlation() -> None:
    backend = FunctionBackend(wc.flipped_kernel, "flipped", dtypes=DTYPES)
    result = run_property(backend, PROPERTIES["is_cross_correlation"], profile="ci")
    assert result.status == "failed"
    assert "is not correlate(x, w)" in result.failures[0]["message"]


@pytest.mark.parametrize("prop", sorted(PROPERTIES))
def test_another_summation_order_passes(prop: str) -> None:
    backend = FunctionBackend(wc.correct_reversed_order, "reversed", dtypes=DTYPES)
    result = run_property(backend, PROPERTIES[prop], profile="ci")
    assert result.status == "passed", result.failures
    assert result.tally.examples >= 100
    # Half precision stays inside its bound with room to spare only if the bound is right; make
    # sure the property actually looked at every dtype.
    assert set(result.tally.by_dtype) == set(DTYPES)


def test_failure_reproducer_reproduces() -> None:
    backend = FunctionBackend(wc.swapped_padding, "swapped", dtypes=("float32",))
    result = run_property(backend, PROPERTIES["matches_reference"], profile="ci")
    (failure,) = result.failures
    namespace: dict[str, object] = {}
    code = failure["reproducer"].replace("get_backend('swapped')", "backend")
    namespace["backend"] = backend
    with pytest.raises(AssertionError, match="Mismatched elements"):
        exec(code, namespace)
