"""Every backend × every property, through the same runner that `crosscheck run` uses.

A backend whose framework is not installed is skipped with the reason shown (nox sessions install
one framework each); list backends in CROSSCHECK_REQUIRE to turn such a skip into a failure.
"""

from __future__ import annotations

import os

import pytest

from crosscheck.backends import BackendUnavailable, backend_names, get_backend
from crosscheck.backends.base import Backend
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
