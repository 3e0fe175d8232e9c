"""Known findings as expectations: keyed on (version, ISA class), their regions searched, every outcome triaged."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import wrong_convolutions as wc

from crosscheck.backends import get_backend
from crosscheck.backends.base import Backend
from crosscheck.backends.function_backend import FunctionBackend
from crosscheck.backends.isolated import IsolatedBackend
from crosscheck.core.finding_regions import FORWARD, REGIONS, Region
from crosscheck.core.hardware import ISA_CLASSES
from crosscheck.core.problem import ConvSpec
from crosscheck.properties import PROPERTIES
from crosscheck.run import findings
from crosscheck.run.record import FINDING_OUTCOMES
from crosscheck.run.runner import run_property

SPEC = {"batch": 1, "in_channels": 1, "out_channels": 1, "in_size": [4], "kernel": [3], "padding": [[0, 0]]}
HALF = ("float64", "float32", "float16")


def test_every_finding_is_documented() -> None:
    for f in findings.known_findings():
        assert {"id", "backend", "property", "framework", "versions", "explanation", "observed"} <= set(f), f["id"]
        assert f["kind"] in findings.KINDS, f["id"]
        assert isinstance(f["isa_dependent"], bool), f["id"]
        assert f["property"] in PROPERTIES, f["id"]
        assert not ("example" in f and "pinned_by" in f), f["id"]
        if "example" not in f and "pinned_by" not in f:
            # Without a minimal example only a region can tell whether it reproduces here.
            assert f["id"] in REGIONS and f["kind"] != "crash", f["id"]
        if f["kind"] == "weaker-contract":
            assert findings.contract_of(f), f["id"]
        assert f["environments"], f["id"]
        for env in f["environments"]:
            assert {"version", "isa_class", "reproduced", "cpu", "source"} <= set(env), f["id"]
            assert env["isa_class"] in ISA_CLASSES, (f["id"], env)
            assert any(str(env["version"]) == v or str(env["version"]).startswith(v) for v in f["versions"])


def test_regions_and_data_name_the_same_findings() -> None:
    data = {f["id"]: f for f in findings.known_findings()}
    assert set(REGIONS) <= set(data), set(REGIONS) - set(data)
    for finding_id, regions in REGIONS.items():
        # Its own backend's, or one a level up that reaches the same bug (`through`, e.g. a Keras backend).
        assert all(r.backend in findings.backends_of(data[finding_id]) for r in regions), finding_id
        assert any(data[finding_id]["property"] in r.properties for r in regions), finding_id
    # Findings without a region: pinned by a test, crashes (kept out of the search), or precision modes whose
    # mode constraint names them.
    for finding_id in set(data) - set(REGIONS):
        f = data[finding_id]
        mode = f.get("example", {}).get("meta", {}).get("precision_mode")
        assert "pinned_by" in f or f["kind"] == "crash" or mode, finding_id


# --- stale, not reproduced here, not applicable -------------------------------------------------------


def _finding(backend: Backend, **fields: Any) -> dict[str, Any]:
    base = {
        "id": "imaginary-bug",
        "backend": backend.name,
        "property": "matches_reference",
        "framework": backend.framework,
        "versions": [backend.version()],
        "kind": "wrong",
        "isa_dependent": True,
        "environments": [],
        "explanation": "a bug this backend never had",
        "observed": "-",
        "example": {"spec": SPEC, "seed": 0, "values": "uniform"},
    }
    return {**base, **fields}


def _env(backend: Backend, isa_class: str, reproduced: bool = True) -> dict[str, Any]:
    return {"version": backend.version(), "isa_class": isa_class, "reproduced": reproduced, "cpu": "-", "source": "-"}


def _only(monkeypatch: pytest.MonkeyPatch, *fs: dict[str, Any], regions: dict[str, Any] | None = None) -> None:
    monkeypatch.setattr(findings, "known_findings", lambda: fs)
    monkeypatch.setattr(findings, "REGIONS", regions or {})


def test_a_finding_that_stops_reproducing_where_it_was_recorded_is_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    numpy = get_backend("numpy")
    here = findings.isa_class_of(numpy)
    _only(monkeypatch, _finding(numpy, environments=[_env(numpy, here)]))
    result = run_property(numpy, PROPERTIES["matches_reference"], profile="ci", max_examples=5)
    assert result.status == "failed"
    (failure,) = result.failures
    assert failure["triage"] == "stale finding" and failure["kind"] == "stale"
    assert "imaginary-bug no longer reproduces" in failure["message"] and here in failure["message"]
    assert "make_problem" in failure["reproducer"] and "# known finding imaginary-bug" in failure["reproducer"]
    assert result.known_findings[0]["outcome"] == "stale"


def test_a_finding_recorded_on_another_isa_class_is_not_reproduced_here(monkeypatch: pytest.MonkeyPatch) -> None:
    numpy = get_backend("numpy")
    other = next(c for c in ISA_CLASSES if c != findings.isa_class_of(numpy))
    _only(monkeypatch, _finding(numpy, environments=[_env(numpy, other)]))
    result = run_property(numpy, PROPERTIES["matches_reference"], profile="ci", max_examples=5)
    assert result.status == "passed", result.failures
    (entry,) = result.known_findings
    assert entry["outcome"] == "not reproduced here" and entry["reproduced"] is False
    assert f"reproduced on {other}" in entry["where"]


def test_an_isa_independent_finding_is_stale_on_any_class(monkeypatch: pytest.MonkeyPatch) -> None:
    numpy = get_backend("numpy")
    other = next(c for c in ISA_CLASSES if c != findings.isa_class_of(numpy))
    _only(monkeypatch, _finding(numpy, isa_dependent=False, environments=[_env(numpy, other)]))
    result = run_property(numpy, PROPERTIES["matches_reference"], profile="ci", max_examples=5)
    assert result.status == "failed" and result.known_findings[0]["outcome"] == "stale"


def test_a_finding_on_another_version_is_reported_not_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    numpy = get_backend("numpy")
    old = _finding(
        numpy, versions=["0.1"], environments=[{**_env(numpy, findings.isa_class_of(numpy)), "version": "0.1"}]
    )
    _only(monkeypatch, old)
    result = run_property(numpy, PROPERTIES["matches_reference"], profile="ci", max_examples=5)
    assert result.status == "passed"
    assert result.known_findings[0]["version_matches"] is False
    assert result.known_findings[0]["outcome"] == "not reproduced here"


def test_an_example_this_backend_refuses_here_is_not_applicable(monkeypatch: pytest.MonkeyPatch) -> None:
    only_2d = FunctionBackend(wc.correlate, "only-2d", ranks=(2,))
    _only(monkeypatch, _finding(only_2d, environments=[_env(only_2d, findings.isa_class_of(only_2d))]))
    (entry,) = findings.replay(only_2d, PROPERTIES["matches_reference"])
    assert entry["outcome"] == "not applicable" and "rank 1 is not supported" in entry["message"]


def test_a_wrong_values_finding_that_raises_instead_fails_differently(monkeypatch: pytest.MonkeyPatch) -> None:
    def raises(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
        raise RuntimeError("kernel not found")

    backend = FunctionBackend(raises, "raises")
    backend.may_decline = False
    _only(monkeypatch, _finding(backend, environments=[_env(backend, findings.isa_class_of(backend))]))
    (entry,) = findings.replay(backend, PROPERTIES["matches_reference"])
    assert entry["outcome"] == "fails differently" and "expected a wrong failure, got a exception" in entry["message"]
    assert list(findings.failing([entry])) == [entry]


def test_a_crash_finding_is_replayed_in_a_worker_process(monkeypatch: pytest.MonkeyPatch) -> None:
    numpy = get_backend("numpy")
    crash = _finding(numpy, kind="crash", environments=[_env(numpy, "amx")])
    _only(monkeypatch, crash)
    replayed = findings._replay_backend(numpy, crash)
    assert isinstance(replayed, IsolatedBackend) and replayed.name == "numpy"
    (entry,) = findings.replay(numpy, PROPERTIES["matches_reference"])
    assert entry["outcome"] == "not reproduced here"  # numpy computes it, in its worker
    assert findings._replay_backend(numpy, _finding(numpy)) is numpy  # other kinds run where the backend runs


# --- regions: the search goes on inside them -----------------------------------------------------------


def half_sums(x: np.ndarray, w: np.ndarray, **kw: Any) -> np.ndarray:
    """float16 problems summed over the kernel taps in float16 (each tap's channel sum in float32): within the
    bound of a float16 accumulator, not of float32's. Other dtypes as the frameworks do."""
    if x.dtype != np.float16:
        return wc.correlate(x, w, **kw)
    taps = list(itertools.product(*(range(k) for k in w.shape[2:])))
    y = None
    for tap in taps:
        index: tuple[Any, ...] = (slice(None), slice(None), *tap)
        one = np.zeros_like(w)
        one[index] = w[index]
        part = wc.correlate(x.astype(np.float32), one.astype(np.float32), **kw)
        y = part.astype(np.float16) if y is None else (y.astype(np.float32) + part).astype(np.float16)
    assert y is not None
    return y


def half_garbage(x: np.ndarray, w: np.ndarray, **kw: Any) -> np.ndarray:
    """Right, except float16 problems with more than one tap come back as zeros."""
    y = wc.correlate(x, w, **kw)
    return np.zeros_like(y) if x.dtype == np.float16 and np.prod(w.shape[2:]) > 1 else y


def _half_finding(backend: Backend) -> tuple[dict[str, Any], dict[str, tuple[Region, ...]]]:
    f = _finding(
        backend,
        id="half-sums",
        kind="weaker-contract",
        contract={"accumulators": {"float16": "float16"}},
        environments=[_env(backend, findings.isa_class_of(backend))],
        example={"spec": {**SPEC, "in_size": [6], "kernel": [5], "dtype": "float16"}, "seed": 0, "values": "uniform"},
    )
    return f, {"half-sums": (Region(backend.name, FORWARD, lambda s: s.dtype == "float16"),)}


def test_inside_a_region_an_explained_failure_is_known_and_the_search_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FunctionBackend(half_sums, "half-sums", dtypes=HALF)
    f, regions = _half_finding(backend)
    _only(monkeypatch, f, regions=regions)
    result = run_property(backend, PROPERTIES["matches_reference"], profile="ci", max_examples=150)
    assert result.status == "passed", result.failures
    (entry,) = result.known_findings
    assert entry["outcome"] == "reproduced"
    assert entry["region_examples"]["failed"] > 0 and entry["region_examples"]["passed"] > 0
    assert (
        entry["evidence"]["problem"]["spec"]["dtype"] == "float16" and "make_problem" in entry["evidence"]["reproducer"]
    )
    # Float16 examples that failed are not in the statistics; every other example is.
    assert result.tally.examples + entry["region_examples"]["failed"] >= 150


def test_the_region_of_a_weaker_contract_still_catches_a_different_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FunctionBackend(half_garbage, "half-garbage", dtypes=HALF)
    f, regions = _half_finding(backend)
    _only(monkeypatch, f, regions=regions)
    result = run_property(backend, PROPERTIES["matches_reference"], profile="ci")
    assert result.status == "failed"
    message = result.failures[0]["message"]
    assert "beyond even its weaker contract (float16 sums in float16)" in message
    assert result.failures[0]["triage"] == "new discrepancy"
    (entry,) = result.known_findings
    assert entry["outcome"] == "beyond its contract"


def test_a_discrepancy_outside_a_region_is_still_found_and_shrunk_outside_it(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FunctionBackend(wc.flipped_kernel, "flipped", dtypes=HALF)
    region = Region(backend.name, FORWARD, lambda s: s.dtype == "float16")
    f = _finding(backend, id="half-anything", environments=[_env(backend, "amx")])
    _only(monkeypatch, f, regions={"half-anything": (region,)})
    result = run_property(backend, PROPERTIES["matches_reference"], profile="ci")
    assert result.status == "failed"
    assert result.failures[0]["problem"]["spec"]["dtype"] != "float16"  # shrinking did not wander into the region
    assert result.failures[0]["triage"] == "new discrepancy"


def test_a_flaky_failure_keeps_its_example_and_message() -> None:
    seen: set[bytes] = set()

    def wrong_once(x: np.ndarray, w: np.ndarray, **kw: Any) -> np.ndarray:
        y = wc.correlate(x, w, **kw)
        key = x.tobytes() + w.tobytes() + repr(kw).encode()
        if key not in seen:  # garbage on the first call of each problem, right afterwards
            seen.add(key)
            y = y + np.asarray(1, dtype=y.dtype)
        return y

    backend = FunctionBackend(wrong_once, "wrong-once", dtypes=("float64",))
    result = run_property(backend, PROPERTIES["matches_reference"], profile="ci", max_examples=20)
    assert result.status == "failed"
    assert result.failures and all(f["kind"] == "flaky" for f in result.failures)
    first = result.failures[0]
    assert "Mismatched elements" in first["message"] and "flaky" in first["message"]
    assert first["problem"]["spec"]["dtype"] == "float64" and "make_problem" in first["reproducer"]
    assert first["triage"] == "new discrepancy"


def test_exactly_the_three_outcomes_that_mean_the_data_is_out_of_date_fail_a_run() -> None:
    from crosscheck.run.record import FAILING_OUTCOMES, SCHEMA

    assert set(FAILING_OUTCOMES) == {"stale", "beyond its contract", "fails differently"}
    items = SCHEMA["properties"]["results"]["items"]["properties"]["known_findings"]["items"]
    assert items["properties"]["outcome"]["enum"] == list(FINDING_OUTCOMES)


def test_spec_fields_used_by_regions_exist() -> None:
    # Every region predicate takes any valid spec without raising (1-D specs have one stride, say).
    specs = [
        ConvSpec(1, 2, 2, (3,) * r, (2,) * r, dtype=d, padding=p, groups=g)
        for r in (1, 2, 3)
        for d in ("float16", "bfloat16", "float32")
        for p in ("VALID", "SAME")
        for g in (1, 2)
    ]
    for regions in REGIONS.values():
        for region in regions:
            for s in specs:
                assert region.contains(s) in (True, False)


def test_the_record_the_report_and_the_terminal_say_what_each_finding_did_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from crosscheck.cli.main import findings_summary, summary_table
    from crosscheck.report.render import render_html
    from crosscheck.run.record import validate
    from crosscheck.run.session import RunOptions, run

    numpy = get_backend("numpy")
    here = findings.isa_class_of(numpy)
    other = next(c for c in ISA_CLASSES if c != here)
    stale = _finding(numpy, environments=[_env(numpy, here)])
    elsewhere = _finding(numpy, id="elsewhere-bug", environments=[_env(numpy, other)])
    _only(monkeypatch, stale, elsewhere)
    options = RunOptions(backends=["numpy"], properties=["matches_reference"], max_examples=5, isolation=False)
    record = run(options)
    validate(record)
    assert record["summary"]["failed"] == 1
    (failure,) = record["results"][0]["failures"]
    assert failure["triage"] == "stale finding" and failure["finding"] == "imaginary-bug"
    assert record["environment"]["dispatch"]["numpy"]["isa_class"] == here
    text = findings_summary(record)
    assert "STALE (1):\n    imaginary-bug" in text and "not reproduced here (1):\n    elsewhere-bug" in text
    assert f"{here}: numpy" in text
    assert "numpy" in summary_table(record)
    html = render_html(record)
    assert "stale finding" in html and "not reproduced here" in html and "kernels dispatch to" in html
    assert f"reproduced on {other}" in html
