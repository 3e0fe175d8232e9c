"""Meta-tests of the beyond-the-forward-pass properties: each must catch a convolution that breaks
exactly what it checks, and let a correct one (another summation order) pass."""

from __future__ import annotations

import numpy as np
import pytest
import wrong_convolutions as wc
import wrong_metamorphic as wm

from crosscheck.backends.base import Backend, Capabilities, PrecisionMode
from crosscheck.backends.function_backend import FunctionBackend
from crosscheck.core.dtypes import COMPLEX_DTYPES, FLOAT_DTYPES
from crosscheck.core.problem import ConvProblem
from crosscheck.properties import PROPERTIES
from crosscheck.properties.metamorphic import METAMORPHIC
from crosscheck.run.runner import run_property


@pytest.mark.parametrize("prop", sorted(wm.WRONG))
def test_each_metamorphic_property_catches_its_wrong_convolution(prop: str) -> None:
    fn, what = wm.WRONG[prop]
    backend = FunctionBackend(fn, fn.__name__, dtypes=FLOAT_DTYPES)
    result = run_property(backend, PROPERTIES[prop], profile="ci")
    assert result.status == "failed", f"{prop} let a convolution that {what} through {result.tally.examples} examples"
    (failure,) = result.failures
    assert "Mismatched elements" in failure["message"], failure["message"]
    assert "make_problem" in failure["reproducer"]


@pytest.mark.parametrize("prop", sorted(METAMORPHIC))
def test_a_correct_convolution_passes_every_metamorphic_property(prop: str) -> None:
    backend = FunctionBackend(wc.correct_reversed_order, "reversed", dtypes=FLOAT_DTYPES + COMPLEX_DTYPES)
    result = run_property(backend, PROPERTIES[prop], profile="ci")
    assert result.status == "passed", result.failures
    assert result.tally.examples >= 40
    assert any(s.exact_examples for s in result.tally.by_dtype.values()), "no bit-for-bit example was drawn"


def test_a_metamorphic_failure_reproduces_from_its_reproducer() -> None:
    backend = FunctionBackend(wm.leaky_batch, "leaky", dtypes=("float32",))
    result = run_property(backend, PROPERTIES["batch_independence"], profile="ci")
    (failure,) = result.failures
    code = failure["reproducer"].replace("get_backend('leaky')", "backend")
    with pytest.raises(AssertionError, match="Mismatched elements"):
        exec(code, {"backend": backend})


def test_group_concatenation_needs_groups() -> None:
    class NoGroups(FunctionBackend):
        def capabilities(self) -> Capabilities:
            return Capabilities(padding=("explicit",), dtypes=("float32",), groups=False)

    result = run_property(NoGroups(wc.correct_reversed_order, "plain"), PROPERTIES["group_concatenation"], profile="ci")
    assert result.status == "unsupported" and "groups" in str(result.reason)


def test_no_conjugation_catches_a_conjugating_convolution() -> None:
    backend = FunctionBackend(wm.conjugating, "conjugating", dtypes=COMPLEX_DTYPES)
    result = run_property(backend, PROPERTIES["no_conjugation"], profile="ci")
    assert result.status == "failed"
    assert "computes Σ x·conj(w)" in result.failures[0]["message"]


def test_no_conjugation_passes_the_cnn_correlation_and_says_why_not_without_complex() -> None:
    backend = FunctionBackend(wc.correct_reversed_order, "reversed", dtypes=COMPLEX_DTYPES)
    result = run_property(backend, PROPERTIES["no_conjugation"], profile="ci")
    assert result.status == "passed", result.failures
    assert result.tally.informative >= 0.9 * result.tally.examples
    real_only = FunctionBackend(wc.correct_reversed_order, "real")
    assert run_property(real_only, PROPERTIES["no_conjugation"], profile="ci").status == "unsupported"


def _round_to_bits(a: np.ndarray, bits: int) -> np.ndarray:
    """Round to `bits`-bit significands (round half to even): relative error at most 2^-bits."""
    m, e = np.frexp(a.astype(np.float64))
    return np.ldexp(np.round(m * 2.0**bits) / 2.0**bits, e)


class ReducedMode(Backend):
    """A float32 convolution with one reduced-precision mode that rounds x and w to `bits`-bit
    significands and declares `declared_u_in`."""

    name = "reduced-mode"
    framework = "crosscheck"

    def __init__(self, bits: int, declared_u_in: float) -> None:
        super().__init__()
        self.bits, self.declared_u_in = bits, declared_u_in

    def capabilities(self) -> Capabilities:
        return Capabilities(dtypes=("float32",), padding=("explicit",))

    def run(self, problem: ConvProblem) -> np.ndarray:
        s = problem.spec
        return wc.correlate(problem.x, problem.w, stride=s.stride, padding=s.pads, dilation=s.dilation, groups=s.groups)

    def precision_modes(self) -> tuple[PrecisionMode, ...]:
        return (
            PrecisionMode("rounded", "inputs rounded", ("float32",), u_in=self.declared_u_in, accumulator="float32"),
            PrecisionMode("elsewhere", "a GPU-only mode", ("float32",), u_in=2.0**-11, unsupported="GPU only"),
        )

    def run_mode(self, problem: ConvProblem, mode: str) -> np.ndarray:
        assert mode == "rounded", mode
        x, w = (_round_to_bits(a, self.bits).astype(np.float32) for a in (problem.x, problem.w))
        rounded = ConvProblem(problem.spec, x, w, problem.seed, problem.values)
        return self.run(rounded)


def test_a_mode_within_its_declared_precision_passes_and_is_recorded() -> None:
    result = run_property(ReducedMode(8, 2.0**-8), PROPERTIES["precision_modes"], profile="ci")
    assert result.status == "passed", result.failures
    assert set(result.tally.by_mode) == {"default", "rounded"}
    assert result.to_dict()["by_mode"]["rounded"]["float32"]["examples"] > 20
    assert ReducedMode(8, 2.0**-8).describe()["precision_modes"][1]["unsupported"] == "GPU only"


@pytest.mark.parametrize(("bits", "declared"), [(5, 2.0**-8), (8, 0.0)])
def test_a_mode_rounding_further_than_declared_is_caught(bits: int, declared: float) -> None:
    result = run_property(ReducedMode(bits, declared), PROPERTIES["precision_modes"], profile="ci")
    assert result.status == "failed"
    message = result.failures[0]["message"]
    assert "precision mode 'rounded'" in message and "exceeds its own bound" in message
    assert "precision_mode" in result.failures[0]["reproducer"]
