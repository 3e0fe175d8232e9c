"""Meta-tests of the backward properties: they must catch deliberately wrong gradients and transposed
convolutions, pass a right one written another way, and draw every output size a stride allows."""

from __future__ import annotations

import numpy as np
import pytest
import wrong_backward as wb
from hypothesis import Phase, find, settings

from crosscheck.backends import get_backend
from crosscheck.backends.base import Backend, Capabilities
from crosscheck.core.adjoint import output_padding
from crosscheck.core.dtypes import FLOAT_DTYPES
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.properties import PROPERTIES
from crosscheck.properties.backward import BACKWARD, backward_problems
from crosscheck.run.runner import run_property

BACKWARD_NAMES = sorted(BACKWARD)


@pytest.mark.parametrize("prop", BACKWARD_NAMES)
def test_a_right_backward_pass_in_another_order_passes(prop: str) -> None:
    result = run_property(wb.NumpyBackward(), PROPERTIES[prop], profile="ci")
    assert result.status == "passed", result.failures
    assert result.tally.examples >= 50
    # The bound is tight (ratios near 1 in half precision): it must hold on every dtype, not just pass.
    assert set(result.tally.by_dtype) == set(FLOAT_DTYPES)
    for needed in ("stride>1", "dilation>1", "grouped", "depthwise", "asymmetric-padding", "batch>1"):
        assert result.tally.features[needed] > 0, needed


CAUGHT = [
    (wb.NegatedInputGradient, "gradient_input", "grad_x: values are not within the error bound"),
    (wb.WeightGradientMissesABatchItem, "gradient_weight", "grad_w: values are not"),
    (wb.OutputPaddingOffByOne, "transposed_matches_reference", "Shape mismatch"),
    (wb.OutputPaddingOffByOne, "adjoint_identity", "Shape mismatch"),
    (wb.OutputPaddingAtTheStart, "transposed_matches_reference", "convᵀ(g, w): values are not"),
    (wb.OutputPaddingAtTheStart, "adjoint_identity", "is not the adjoint of the convolution"),
    (wb.UnflippedTransposedKernel, "transposed_matches_reference", "convᵀ(g, w): values are not"),
    (wb.UnflippedTransposedKernel, "adjoint_identity", "is not the adjoint of the convolution"),
]


@pytest.mark.parametrize(("cls", "prop", "message"), CAUGHT, ids=[f"{c.name}-{p}" for c, p, _ in CAUGHT])
def test_a_wrong_backward_pass_is_caught(cls: type[wb.NumpyBackward], prop: str, message: str) -> None:
    result = run_property(cls(), PROPERTIES[prop], profile="ci")
    assert result.status == "failed", f"{cls.name} slipped through {result.tally.examples} examples of {prop}"
    (failure,) = result.failures
    assert message in failure["message"]
    assert "make_problem" in failure["reproducer"]


def test_each_wrong_backward_pass_breaks_only_what_it_breaks() -> None:
    """The negated input gradient leaves the weight gradient and the transposed convolution right."""
    for prop in ("gradient_weight", "transposed_matches_reference", "adjoint_identity"):
        assert (
            run_property(wb.NegatedInputGradient(), PROPERTIES[prop], profile="ci", max_examples=30).status == "passed"
        )


def test_the_off_by_one_output_padding_is_caught_on_a_stride_above_one() -> None:
    result = run_property(wb.OutputPaddingOffByOne(), PROPERTIES["transposed_matches_reference"], profile="ci")
    spec = result.failures[0]["problem"]["spec"]
    assert max(spec["stride"]) > 1  # with stride 1 there is no output_padding to get wrong


def test_a_failure_reproducer_reproduces() -> None:
    backend = wb.UnflippedTransposedKernel()
    result = run_property(backend, PROPERTIES["transposed_matches_reference"], profile="ci")
    namespace: dict[str, object] = {"backend": backend}
    code = result.failures[0]["reproducer"].replace("get_backend('unflipped-transposed-kernel')", "backend")
    with pytest.raises(AssertionError, match="values are not"):
        exec(code, namespace)


@pytest.mark.parametrize("name", ["numpy", "scipy.correlate"])
def test_backends_without_a_backward_pass_are_unsupported_with_a_reason(name: str) -> None:
    backend = get_backend(name)
    for prop in BACKWARD_NAMES:
        result = run_property(backend, PROPERTIES[prop], profile="ci")
        assert result.status == "unsupported"
        assert result.reason and ("no autograd" in result.reason or "no transposed convolution" in result.reason)


class RaisesInBackward(wb.NumpyBackward):
    """Declares the backward pass but its framework raises: a failure, as for the forward pass."""

    name = "raises-in-backward"

    def conv_transpose(self, problem: ConvProblem, g: np.ndarray) -> np.ndarray:
        raise RuntimeError("kernel not found")


def test_a_backend_error_on_a_declared_problem_is_a_failure() -> None:
    result = run_property(RaisesInBackward(), PROPERTIES["transposed_matches_reference"], profile="ci")
    assert result.status == "failed"
    assert "backend raised RuntimeError: kernel not found" in result.failures[0]["message"]


@pytest.mark.parametrize("stride", [2, 3, 4])
def test_every_output_padding_a_stride_allows_is_drawn(stride: int) -> None:
    """For stride s the transposed convolution has s output sizes per input size (output_padding
    0 .. s − 1): the strategy reaches each of them, with explicit and with named padding."""
    for mode in ("explicit", "VALID", "SAME"):
        space = Capabilities(dtypes=("float32",), ranks=(1,), groups=False, padding=(mode,), max_stride=stride)
        for p in range(stride):
            found = find(
                backward_problems(space),
                lambda pr, p=p: pr.spec.stride == (stride,) and output_padding(pr.spec) == (p,),  # type: ignore[misc]
                # The first hit is enough: shrinking it would only cost time.
                settings=settings(max_examples=5_000, database=None, phases=[Phase.generate]),
            )
            assert output_padding(found.spec) == (p,)
            assert space.refuses(found.spec) is None


class NoSpaces(Backend):
    name = "no-spaces"

    def capabilities(self) -> Capabilities:
        return Capabilities(unsupported=(("gradients", "a reason of its own"),))

    def run(self, problem: ConvProblem) -> np.ndarray:
        raise AssertionError("never called")


def test_an_unsupported_reason_the_backend_gives_is_the_one_recorded() -> None:
    assert run_property(NoSpaces(), PROPERTIES["gradient_weight"], profile="ci").reason == "a reason of its own"


def test_the_backward_pass_runs_behind_process_isolation() -> None:
    """`crosscheck run` isolates each backend in a worker: gradients, transposed convolutions and the
    backward spaces' own constraints (asked of the worker, like the forward ones) cross the pipe."""
    from crosscheck.backends.isolated import IsolatedBackend

    with IsolatedBackend(wb.ConstrainedBackward, "constrained-backward") as backend:
        caps = backend.capabilities()
        assert caps.gradients is not None and caps.transposed is not None
        assert caps.gradients.refuses(ConvSpec(1, 1, 1, (3,), (2,), padding=((0, 0),))) == "odd batches are refused"
        assert caps.gradients.refuses(ConvSpec(2, 1, 1, (3,), (2,), padding=((0, 0),))) is None
        for prop in ("gradient_weight", "adjoint_identity"):
            result = run_property(backend, PROPERTIES[prop], profile="ci", max_examples=10)
            assert result.status == "passed", result.failures


def test_half_precision_sums_in_the_transposed_convolution_are_caught() -> None:
    """The bound is tight enough to tell a float16 accumulator from the float32 one it promises, and
    the accumulation probe the adapters run names it."""
    from crosscheck.backends.accumulation import narrow_sum_errors

    backend = wb.NarrowTransposedSums()
    result = run_property(backend, PROPERTIES["transposed_matches_reference"], profile="ci")
    assert result.status == "failed"
    assert result.failures[0]["problem"]["spec"]["dtype"] in ("float16", "bfloat16")
    assert narrow_sum_errors("float16", "channels_first", conv_transpose=backend.conv_transpose)
    assert not narrow_sum_errors("float16", "channels_first", conv_transpose=wb.NumpyBackward().conv_transpose)
    assert not narrow_sum_errors("float16", "channels_first", vjp=wb.NumpyBackward().vjp)
