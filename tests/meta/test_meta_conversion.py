"""Meta-tests of `conversion_end_to_end`: converter stand-ins whose source layer is right and whose conversion is
wrong in the ways converters go wrong (SAME's odd pad split the wrong way, the kernel's layout transposed) are
caught, with the converted side named; a faithful conversion passes; a backend that converts nothing is unsupported."""

from __future__ import annotations

import numpy as np
import pytest
import wrong_convolutions as wc

from crosscheck.backends.base import Backend, Capabilities
from crosscheck.backends.function_backend import FunctionBackend
from crosscheck.core.padding import Pads, resolve_padding
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.properties import PROPERTIES
from crosscheck.run.runner import run_property

PROPERTY = PROPERTIES["conversion_end_to_end"]


def _correlate(problem: ConvProblem, w: np.ndarray, pads: Pads | None = None) -> np.ndarray:
    s = problem.spec
    return wc.correlate(problem.x, w, stride=s.stride, padding=pads or s.pads, dilation=s.dilation, groups=s.groups)


class StandIn(Backend):
    """The source is the reference's own correlation; the "converted" side is `convert`'s translation of it."""

    converted_from = "numpy (the stand-in's source layer)"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__()

    def capabilities(self) -> Capabilities:
        return Capabilities(dtypes=("float32", "float64"), padding=("explicit", "VALID", "SAME"))

    def run_source(self, problem: ConvProblem) -> np.ndarray:
        return _correlate(problem, problem.w)

    def run(self, problem: ConvProblem) -> np.ndarray:
        return _correlate(problem, problem.w)


class SameSplitWrong(StandIn):
    """Translates SAME into explicit pads with the odd extra pad at the start (SAME_LOWER's split)."""

    def run(self, problem: ConvProblem) -> np.ndarray:
        s = problem.spec
        if s.padding != "SAME":
            return _correlate(problem, problem.w)
        return _correlate(problem, problem.w, resolve_padding("SAME_LOWER", s.in_size, s.kernel, s.stride, s.dilation))


class KernelTransposed(StandIn):
    """Moves the weight from a channels-last layout (*kernel, C_in/groups, C_out) by a reshape instead of a
    transpose: every tap lands in the wrong place, the shape is right."""

    def run(self, problem: ConvProblem) -> np.ndarray:
        w = problem.w
        channels_last = np.ascontiguousarray(np.moveaxis(w, (0, 1), (-1, -2)))
        return _correlate(problem, channels_last.reshape(w.shape))


@pytest.mark.parametrize("stand_in", [SameSplitWrong, KernelTransposed])
def test_a_mistranslating_converter_is_caught_on_its_converted_side(stand_in: type[StandIn]) -> None:
    result = run_property(stand_in(stand_in.__name__), PROPERTY, profile="ci")
    assert result.status == "failed", f"{stand_in.__name__} slipped through {result.tally.examples} examples"
    failure = result.failures[0]
    assert "the converted model is not within its bound" in failure["message"], failure["message"]
    assert "Mismatched elements" in failure["message"]
    spec = ConvSpec.from_dict(failure["problem"]["spec"])
    if stand_in is SameSplitWrong:  # shrunk to what the bug needs: SAME with an odd total pad
        assert spec.padding == "SAME"
        assert any((lo + hi) % 2 for lo, hi in spec.pads), spec.describe()


def test_a_faithful_conversion_passes() -> None:
    result = run_property(StandIn("faithful"), PROPERTY, profile="ci")
    assert result.status == "passed", result.failures
    assert result.tally.examples >= 40


def test_a_wrong_source_is_named_as_the_source() -> None:
    class WrongSource(StandIn):
        def run_source(self, problem: ConvProblem) -> np.ndarray:
            return _correlate(problem, np.flip(problem.w, axis=tuple(range(2, problem.w.ndim))))

    result = run_property(WrongSource("wrong-source"), PROPERTY, profile="ci")
    assert result.status == "failed"
    assert "the layer before conversion (numpy" in result.failures[0]["message"]


def test_a_backend_that_converts_nothing_is_unsupported_with_the_reason() -> None:
    result = run_property(FunctionBackend(wc.correct_reversed_order, "plain"), PROPERTY, profile="ci")
    assert result.status == "unsupported"
    assert "not a converted model" in str(result.reason)
