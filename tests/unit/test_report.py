"""The HTML report and the merge of records: rendered from records alone, self-contained, escaped."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from report_support import EVIL, Record, failing_record, passing_record

from crosscheck.core.errors import CrosscheckError
from crosscheck.report.merge import merge_records, shard_label
from crosscheck.report.model import distributions, verdict_matrix
from crosscheck.report.render import render_html
from crosscheck.run.record import validate


@pytest.fixture(scope="module")
def passing() -> Record:
    return passing_record()


@pytest.fixture(scope="module")
def failing() -> Record:
    return failing_record()


@pytest.fixture(scope="module")
def html(failing: Record) -> str:
    return render_html(failing)


def test_report_is_one_self_contained_file(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>")
    assert "<style>" in html and "<svg" in html  # inline CSS and charts
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I), "a network reference"
    assert not re.search(r"<link\b|@import|url\(\s*['\"]?(?:https?:)?//", html, re.I)
    assert "<script" not in html.lower()
    assert "Content-Security-Policy" in html


def test_report_shows_each_backend_property_and_failure(failing: Record, html: str) -> None:
    for r in failing["results"]:
        assert r["backend"] in html and r["property"] in html
    assert "checks failed" in html
    failures = [f for r in failing["results"] for f in r["failures"]]
    assert html.count('class="failure"') == len(failures) + len(failing["pairwise"]["failures"])
    assert "Reproduce with crosscheck" in html and "make_problem(spec, seed=" in html


def test_framework_error_text_is_escaped(html: str) -> None:
    assert EVIL not in html
    assert "&lt;script&gt;window.__xss = 1" in html
    assert "&lt;img src=x onerror=&#34;window.__xss = 2&#34;&gt;" in html


def test_markup_in_a_backend_name_is_escaped_everywhere(passing: Record) -> None:
    record = copy.deepcopy(passing)
    evil = "<b>numpy</b>"
    for entry in (*record["backends"], *record["results"]):
        if entry.get("name") == "numpy":
            entry["name"] = evil
        if entry.get("backend") == "numpy":
            entry["backend"] = evil
    html = render_html(record)
    assert evil not in html and "&lt;b&gt;numpy&lt;/b&gt;" in html


def test_passing_report_says_every_check_holds(passing: Record) -> None:
    html = render_html(passing)
    assert "Every check holds" in html and "Failures (0)" in html
    assert "cross-correlation" in html and "SAME_LOWER" in html  # the semantics section
    assert passing["environment"]["packages"]["numpy"] in html


def test_the_same_record_renders_the_same_file(passing: Record) -> None:
    assert render_html(passing) == render_html(copy.deepcopy(passing))


def test_verdict_matrix_counts_passed_failed_and_unsupported(failing: Record) -> None:
    m = verdict_matrix(failing)
    assert m.counts["failed"] >= 1 and m.counts["passed"] >= 1
    for row in m.rows:
        result = next(r for r in failing["results"] if (r["backend"], r["property"]) == (row.backend, row.prop))
        assert sum(c.passed for c in row.cells) == result["examples"]
        assert sum(c.failed for c in row.cells) == len(result["failures"])


def test_unsupported_dtype_cells_carry_the_adapters_reason(passing: Record) -> None:
    m = verdict_matrix(passing)
    row = next(r for r in m.rows if r.backend == "scipy.correlate")
    cell = row.cells[m.dtypes.index("float16")]  # numpy brings the float16 column; SciPy refuses it
    assert cell.kind == "unsupported" and cell.reason and "float16" in cell.reason


def test_distributions_sum_properties_per_backend_and_dtype(passing: Record) -> None:
    dists = distributions(passing)
    for dtype, ds in dists.items():
        for d in ds:
            want = sum(
                r["by_dtype"][dtype]["examples"]
                for r in passing["results"]
                if r["backend"] == d.backend and dtype in r["by_dtype"]
            )
            assert d.examples == want


def test_merge_sums_examples_and_histograms_and_keeps_each_environment(passing: Record) -> None:
    other = passing_record(seed=5, backends=("numpy",))
    other["environment"] = {**other["environment"], "python": "3.99.0"}
    merged = merge_records([passing, other], ["a/shard-1/crosscheck.json", "b/shard-2/crosscheck.json"])
    validate(merged)  # still a schema-1 record
    key = ("numpy", "matches_reference")
    a, b, m = (
        next(r for r in rec["results"] if (r["backend"], r["property"]) == key) for rec in (passing, other, merged)
    )
    assert m["examples"] == a["examples"] + b["examples"]
    for dtype, s in m["by_dtype"].items():
        parts = [x["by_dtype"][dtype] for x in (a, b) if dtype in x["by_dtype"]]
        assert s["examples"] == sum(p["examples"] for p in parts)
        assert s["histogram"] == [sum(col) for col in zip(*(p["histogram"] for p in parts))]
        assert s["max_ratio"] == max(p["max_ratio"] for p in parts)
    assert [s["label"] for s in merged["shards"]] == ["shard-1", "shard-2"]
    assert merged["shards"][1]["environment"]["python"] == "3.99.0"
    html = render_html(merged)
    assert "3.99.0" in html and "<b>2</b> shards merged" in html and "Shard shard-2" in html


def test_merge_unions_failures_and_the_worst_status_wins(passing: Record, failing: Record) -> None:
    merged = merge_records([passing, failing], ["ok.json", "bad.json"])
    status = {(r["backend"], r["property"]): r["status"] for r in merged["results"]}
    assert status[("numpy", "matches_reference")] == "passed"
    assert status[("broken", "matches_reference")] == "failed"
    n_failures = sum(len(r["failures"]) for r in failing["results"])
    assert sum(len(r["failures"]) for r in merged["results"]) == n_failures
    assert all(f["shard"] == "bad" for r in merged["results"] for f in r["failures"])
    assert merged["summary"]["failed"] >= 1
    # Merging the merge again with nothing new changes no count and keeps both shards.
    again = merge_records([merged], ["merged.json"])
    assert again["summary"] == merged["summary"] and len(again["shards"]) == 2


def test_merge_refuses_shards_with_different_histogram_bins(passing: Record) -> None:
    other = copy.deepcopy(passing)
    other["run"]["started"] = "2000-01-01T00:00:00+00:00"  # another run: a copy of the same one is refused
    for r in other["results"]:
        for s in r["by_dtype"].values():
            s["histogram"] = s["histogram"][:-1]
    with pytest.raises(CrosscheckError, match="different histogram bins"):
        merge_records([passing, other])


def test_shard_labels_come_from_the_nox_folder() -> None:
    assert shard_label("reports/shards/torch-3.11/crosscheck.json") == "torch-3.11"
    assert shard_label("ci/linux.json") == "linux"


def _wrong_shape(x: Any, w: Any, **kw: Any) -> Any:
    import numpy as np
    import wrong_convolutions as wc

    return np.concatenate([wc.correlate(x, w, **kw)] * 2, axis=-1)  # every output twice as long


def _wrong_sign(x: Any, w: Any, **kw: Any) -> Any:
    import wrong_convolutions as wc

    return -wc.correlate(x, w, **kw)


def test_one_root_cause_failing_many_properties_is_one_card() -> None:
    from crosscheck.backends.function_backend import FunctionBackend
    from crosscheck.report.model import failures
    from crosscheck.run.session import RunOptions, run_backends

    props = ["matches_reference", "is_cross_correlation", "batch_independence"]
    backends: list[Any] = [
        FunctionBackend(_wrong_shape, "doubled", dtypes=("float64",)),
        FunctionBackend(_wrong_sign, "negated", dtypes=("float64",)),
    ]
    record = run_backends(backends, [], props, RunOptions(max_examples=10, pairwise=False))
    # negation is linear, so it passes batch_independence: 3 + 2 failures
    assert sum(len(r["failures"]) for r in record["results"]) == 5
    cards = failures(record)
    doubled = [c for c in cards if c.backend == "doubled"]
    assert len(doubled) == 1 and doubled[0].diagnosis == "the output has the wrong shape"
    assert sorted([doubled[0].prop, *doubled[0].also]) == sorted(props)
    # Wrong values have no property-independent diagnosis: each property keeps its own card.
    assert len([c for c in cards if c.backend == "negated"]) == 2
    html = render_html(record)
    assert "One root cause — the output has the wrong shape" in html and "also fails 2 more properties" in html


def test_the_matrix_is_one_summary_per_backend_open_where_something_failed(failing: Record) -> None:
    m = verdict_matrix(failing)
    groups = {g.backend: g for g in m.backends}
    assert set(groups) == {r["backend"] for r in failing["results"]}
    assert groups["broken"].status == "failed" and groups["broken"].opened
    assert groups["numpy"].status == "passed" and not groups["numpy"].opened
    for g in m.backends:
        mine = [r for r in failing["results"] if r["backend"] == g.backend]
        assert len(g.rows) + len(g.not_applicable) == len(mine)
        assert g.examples == sum(r["examples"] for r in mine)
        assert g.held == sum(1 for r in mine if r["status"] == "passed")
        assert all(r.status == "unsupported" for r in g.not_applicable)


def test_two_distinct_bugs_in_one_property_are_two_cards() -> None:
    import wrong_convolutions as wc

    from crosscheck.backends.function_backend import FunctionBackend
    from crosscheck.report.model import failures
    from crosscheck.run.session import RunOptions, run_backends

    backend = FunctionBackend(wc.two_bugs, "two-bugs", dtypes=("float64",))
    record = run_backends([backend], [], ["matches_reference"], RunOptions(max_examples=40, pairwise=False, seed=3))
    (result,) = record["results"]
    assert result["status"] == "failed" and len(result["failures"]) == 2
    assert len(failures(record)) == 2
    assert render_html(record).count('<section class="failure"') == 2
