"""Every backend × every property, through the same runner that `crosscheck run` uses.

A backend whose framework is not installed is skipped with the reason shown (nox sessions install
one framework each); list backends in CROSSCHECK_REQUIRE to turn such a skip into a failure.
"""

from __future__ import annotations

import os

import pytest

from crosscheck.backends import BackendUnavailable, backend_names, get_backend
from crosscheck.backends.base import Backend
from crosscheck.core.problem import ConvSpec
from crosscheck.core.values import make_problem
from crosscheck.properties import PROPERTIES
from crosscheck.run.profiles import default_profile
from crosscheck.run.runner import run_property

REQUIRED = {n.strip() for n in os.environ.get("CROSSCHECK_REQUIRE", "").split(",") if n.strip()}


def backend_or_skip(name: str) -> Backend:
    try:
        return get_backend(name)
    except BackendUnavailable as exc:
        if name in REQUIRED:
            pytest.fail(f"required backend unavailable: {exc}")
        pytest.skip(f"not installed here: {exc}")


@pytest.mark.parametrize("prop", sorted(PROPERTIES))
@pytest.mark.parametrize("name", backend_names())
def test_property_holds(name: str, prop: str) -> None:
    backend = backend_or_skip(name)
    result = run_property(backend, PROPERTIES[prop], profile=default_profile())
    messages = "\n\n".join(
        f"[{f.get('triage', 'new discrepancy')}] {f['message']}"
        + (f"\n\nReproduce with:\n{f['reproducer']}" if f.get("reproducer") else "")
        for f in result.failures
    )
    assert result.status in ("passed", "unsupported"), f"{result.status}: {result.reason or ''}\n{messages}"
    if result.status == "passed":
        assert result.tally.examples > 0


@pytest.mark.parametrize("name", backend_names())
def test_capabilities_are_explained(name: str) -> None:
    backend = backend_or_skip(name)
    caps = backend.capabilities()
    assert caps.dtypes and caps.ranks and caps.padding and caps.layouts
    for feature, reason in caps.unsupported:
        assert feature and len(reason) > 10, (feature, reason)


# The largest strides and dilations of crosscheck/data/realistic_layers.json, which Capabilities' defaults declare.
LARGE_GEOMETRY = {
    "wav2vec 2.0 k10/s5": ConvSpec(batch=1, in_channels=4, out_channels=4, in_size=(203,), kernel=(10,), stride=(5,)),
    "stride 8": ConvSpec(
        batch=1, in_channels=3, out_channels=4, in_size=(37, 37), kernel=(7, 7), stride=(8, 8), padding=((3, 3), (3, 3))
    ),
    "ASPP rate 36": ConvSpec(
        batch=1,
        in_channels=2,
        out_channels=3,
        in_size=(80, 76),
        kernel=(3, 3),
        dilation=(36, 36),
        padding=((36, 36), (36, 36)),
    ),
    "ASPP rate 12, SAME": ConvSpec(
        batch=1, in_channels=2, out_channels=2, in_size=(30, 31), kernel=(3, 3), dilation=(12, 12), padding="SAME"
    ),
}


@pytest.mark.parametrize("label", sorted(LARGE_GEOMETRY))
@pytest.mark.parametrize("name", backend_names())
def test_the_declared_largest_stride_and_dilation_are_computed_right(name: str, label: str) -> None:
    backend = backend_or_skip(name)
    caps = backend.capabilities()
    checked = 0
    for dtype in ("float32", "float64"):
        spec = LARGE_GEOMETRY[label].with_(dtype=dtype)
        if spec.layout not in caps.layouts:
            spec = spec.with_(layout=caps.layouts[0])
        if caps.refuses(spec):  # refused for another reason (padding mode, dtype, a stride+dilation rule)
            continue
        PROPERTIES["matches_reference"].check(backend, make_problem(spec, 7))  # raises PropertyFailure if wrong
        checked += 1
    assert checked or caps.refuses(LARGE_GEOMETRY[label]) is not None, "nothing checked, nothing refused"
