from __future__ import annotations

import pytest

from crosscheck import findings
from crosscheck.backends import get_backend
from crosscheck.properties import PROPERTIES
from crosscheck.runner import run_property


def test_every_finding_is_documented() -> None:
    for f in findings.known_findings():
        assert {"id", "backend", "property", "framework", "versions", "explanation", "observed"} <= set(f)
        assert ("example" in f) != ("pinned_by" in f), f["id"]
        assert f["property"] in PROPERTIES


def test_a_finding_that_no_longer_reproduces_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    numpy = get_backend("numpy")
    fixed = {
        "id": "numpy-imaginary-bug",
        "backend": "numpy",
        "property": "matches_reference",
        "framework": "numpy",
        "versions": [numpy.version()],
        "explanation": "a bug that numpy never had",
        "observed": "-",
        "example": {
            "spec": {"batch": 1, "in_channels": 1, "out_channels": 1, "in_size": [4], "kernel": [3]},
            "seed": 0,
            "values": "uniform",
        },
    }
    monkeypatch.setattr(findings, "known_findings", lambda: (fixed,))
    result = run_property(numpy, PROPERTIES["matches_reference"], profile="ci", max_examples=5)
    assert result.status == "failed"
    assert "numpy-imaginary-bug no longer reproduces" in result.failures[0]["message"]
    assert result.known_findings[0]["reproduced"] is False


def test_a_finding_on_another_version_is_reported_not_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    numpy = get_backend("numpy")
    old = {
        "id": "numpy-old-bug",
        "backend": "numpy",
        "property": "matches_reference",
        "framework": "numpy",
        "versions": ["0.1"],
        "explanation": "fixed long ago",
        "observed": "-",
        "example": {
            "spec": {"batch": 1, "in_channels": 1, "out_channels": 1, "in_size": [4], "kernel": [3]},
            "seed": 0,
            "values": "uniform",
        },
    }
    monkeypatch.setattr(findings, "known_findings", lambda: (old,))
    result = run_property(numpy, PROPERTIES["matches_reference"], profile="ci", max_examples=5)
    assert result.status == "passed"
    assert result.known_findings[0]["version_matches"] is False
