"""Meta-tests of the fused property: it must pass a right op-by-op composition and catch deliberately wrong ones
(the bias twice, the activation before the bias, the bias on the wrong axis, a wrong leaky slope, no bias)."""

from __future__ import annotations

import pytest
import wrong_fused as wf

from crosscheck.backends.base import Backend
from crosscheck.core.dtypes import FLOAT_DTYPES
from crosscheck.properties import PROPERTIES
from crosscheck.properties.fused import NO_FUSED
from crosscheck.run.runner import run_property

PROP = PROPERTIES["fused_bias_activation"]


def test_a_right_composition_passes_on_every_float_dtype() -> None:
    result = run_property(wf.NumpyFused(), PROP, profile="ci")
    assert result.status == "passed", result.failures
    assert result.tally.examples >= 40
    # The bound is tight in half precision (the second rounding of the op-by-op composition): every dtype is drawn.
    assert set(result.tally.by_dtype) == set(FLOAT_DTYPES)
    for act in wf.ACTIVATIONS:
        assert result.tally.features[f"activation={act}"] > 0


@pytest.mark.parametrize(
    ("backend", "activation"),
    [
        (wf.BiasAddedTwice, None),
        (wf.ActivationBeforeBias, None),
        (wf.BiasOnTheLastAxis, None),
        (wf.LeakySlopeOfTorchDefault, "leaky_relu"),
        (wf.BiasDropped, None),
    ],
)
def test_a_wrong_fused_function_is_caught(backend: type[Backend], activation: str | None) -> None:
    result = run_property(backend(), PROP, profile="ci")
    assert result.status == "failed", backend.name
    failure = result.failures[0]
    assert "exceeds its composed bound" in failure["message"]
    if activation:
        assert failure["problem"]["meta"]["activation"] == activation


def test_a_backend_without_a_fused_call_is_unsupported_with_the_reason() -> None:
    from crosscheck.backends import get_backend

    result = run_property(get_backend("numpy"), PROP, profile="ci")
    assert result.status == "unsupported"
    assert result.reason == NO_FUSED
