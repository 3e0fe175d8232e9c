"""Meta-tests: the property suite must catch deliberately wrong convolutions, and pass right ones."""

from __future__ import annotations

import numpy as np
import pytest
import wrong_convolutions as wc

from crosscheck.backends.base import Backend, Capabilities
from crosscheck.backends.function_backend import FunctionBackend
from crosscheck.core.padding import resolve_padding
from crosscheck.core.problem import ConvProblem
from crosscheck.properties import PROPERTIES
from crosscheck.run.runner import run_property

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


@pytest.mark.parametrize("prop", ["matches_reference", "is_cross_correlation"])
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


class SameLowerForSame(Backend):
    """Accepts SAME but pads like SAME_LOWER (the odd extra pad at the start)."""

    name = "same-lower-for-same"

    def capabilities(self) -> Capabilities:
        return Capabilities(padding=("SAME",), dtypes=("float32", "float64"))

    def run(self, problem: ConvProblem) -> np.ndarray:
        s = problem.spec
        pads = resolve_padding("SAME_LOWER", s.in_size, s.kernel, s.stride, s.dilation)
        return wc.correlate(problem.x, problem.w, stride=s.stride, padding=pads, dilation=s.dilation, groups=s.groups)


def test_wrong_named_padding_is_caught_and_diagnosed() -> None:
    result = run_property(SameLowerForSame(), PROPERTIES["named_padding"], profile="ci")
    assert result.status == "failed"
    assert "matches SAME_LOWER's pads" in result.failures[0]["message"]


def test_named_padding_needs_a_named_mode() -> None:
    backend = FunctionBackend(wc.correct_reversed_order, "explicit-only")
    assert run_property(backend, PROPERTIES["named_padding"], profile="ci").status == "unsupported"


def test_pairwise_agreement_catches_the_odd_one_out() -> None:
    from crosscheck.backends import get_backend
    from crosscheck.run.pairwise import run_pairwise

    good = [get_backend("numpy"), get_backend("scipy.correlate")]
    bad = FunctionBackend(wc.dropped_input_channel, "dropped", dtypes=("float32", "float64"))
    clean = run_pairwise(good, profile="ci", max_examples=50)
    assert clean.status == "passed" and clean.examples == 50
    result = run_pairwise([*good, bad], profile="ci", max_examples=100)
    assert result.status == "failed"
    assert "dropped" in result.failures[0]["pair"]


def test_a_property_with_two_distinct_bugs_reports_both() -> None:
    backend = FunctionBackend(wc.two_bugs, "two-bugs", dtypes=("float64",))
    result = run_property(backend, PROPERTIES["matches_reference"], profile="ci", distinct_bugs=3)
    assert result.status == "failed"
    triggers = []
    for failure in result.failures:
        spec = failure["problem"]["spec"]
        triggers.append((max(spec["stride"]) > 1, max(spec["dilation"]) > 1))
    # Each minimal example shows one bug alone (shrinking keeps only what its failure needs), and no bug twice.
    assert sorted(triggers) == [(False, True), (True, False)], triggers
    assert result.repeats > 0  # the second search met the first bug again and went past it


def test_one_bug_is_reported_once_however_long_the_search() -> None:
    backend = FunctionBackend(wc.flipped_kernel, "flipped", dtypes=("float64", "float32"))
    result = run_property(backend, PROPERTIES["matches_reference"], profile="ci", distinct_bugs=3)
    assert len(result.failures) == 1 and result.repeats > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_bug_first_shrunk_to_a_needless_feature_is_still_one_bug(seed: int) -> None:
    """Under the coverage guide a short search can stop shrinking at, say, a grouped example of a backend wrong on
    every problem; the plain failure found next is the same bug in a simpler form and replaces it."""
    from crosscheck.run.session import RunOptions, run_backends

    backend = FunctionBackend(lambda x, w, **kw: -wc.correlate(x, w, **kw), "negated", dtypes=("float64",))
    record = run_backends([backend], [], ["matches_reference"], RunOptions(max_examples=10, pairwise=False, seed=seed))
    (result,) = record["results"]
    assert result["status"] == "failed" and len(result["failures"]) == 1, [
        f["problem"]["spec"] for f in result["failures"]
    ]
