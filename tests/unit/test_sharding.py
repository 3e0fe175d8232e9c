"""`crosscheck run --shard I/N`: shards never overlap, together they are the whole run, and
`crosscheck report merge` puts them back together (and says when one is missing)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from crosscheck.backends.registry import backend_names
from crosscheck.cli.main import main
from crosscheck.core.errors import CrosscheckError
from crosscheck.properties import PROPERTIES
from crosscheck.report.merge import incomplete_note, merge_records
from crosscheck.report.render import render_html
from crosscheck.run.record import load, validate
from crosscheck.run.session import RunOptions, run
from crosscheck.run.sharding import PAIRWISE, Shard, plan

BACKENDS = ["numpy", "scipy.correlate"]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_shards_are_disjoint_and_cover_the_plan(count: int) -> None:
    whole = plan(backend_names(), list(PROPERTIES), pairwise=True)
    parts = [whole.assigned(Shard(i, count)) for i in range(1, count + 1)]
    flat = [u for part in parts for u in part]
    assert len(flat) == len(set(flat)) == len(whole.units)  # no unit twice
    assert set(flat) == set(whole.units) and PAIRWISE in flat
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_the_plan_depends_on_the_selection_not_its_order() -> None:
    a = plan(["numpy", "torch", "jax"], ["linearity", "matches_reference"], pairwise=True)
    b = plan(["jax", "numpy", "torch"], ["matches_reference", "linearity"], pairwise=True)
    assert a == b and a.digest == b.digest
    assert plan(["numpy", "torch"], ["linearity"], pairwise=True).digest != a.digest
    assert PAIRWISE not in plan(["numpy"], ["linearity"], pairwise=True).units


def test_shard_parsing() -> None:
    assert Shard.parse("2/3") == Shard(2, 3) and str(Shard(2, 3)) == "2/3"
    for bad in ("0/2", "3/2", "1", "a/b", "1/0", "-1/2"):
        with pytest.raises(CrosscheckError):
            Shard.parse(bad)


@pytest.mark.parametrize("bad", ["0/2", "3/2", "two"])
def test_bad_shard_is_usage_error(bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--shard", bad, "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "I/N" in capsys.readouterr().err


def _run(shard: Shard | None) -> dict[str, Any]:
    options = RunOptions(backends=BACKENDS, max_examples=3, seed=1, isolation=False, shard=shard, command=["pytest"])
    return run(options)


def _coverage(record: dict[str, Any]) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {
        (r["backend"], r["property"]): (
            r["status"],
            r["examples"],
            {d: s["examples"] for d, s in r["by_dtype"].items()},
            r["features"],
        )
        for r in record["results"]
    }
    pw = record["pairwise"]
    out[PAIRWISE] = (pw["status"], pw["examples"], [(m["a"], m["b"], m["examples"]) for m in pw["matrix"]])
    return out


def _combinations(record: dict[str, Any]) -> dict[str, Any]:
    return {
        name: (
            c["examples"],
            c["guided_draws"],
            c["features"],
            {k: c["pairs"][k] for k in ("covered", "total", "ratio")},
            {k: c["triples"][k] for k in ("covered", "total", "ratio")},
            c["implementations"],
        )
        for name, c in record["coverage"].items()
    }


@pytest.fixture(scope="module")
def shards() -> list[dict[str, Any]]:
    return [_run(Shard(1, 2)), _run(Shard(2, 2))]


def test_two_shards_merged_cover_exactly_the_unsharded_run(shards: list[dict[str, Any]]) -> None:
    whole = _run(None)
    for s in shards:
        validate(s)
        assert s["run"]["shard_plan"] == shards[0]["run"]["shard_plan"]
    assert [s["run"]["shard"] for s in shards] == ["1/2", "2/2"]
    mine = [{(r["backend"], r["property"]) for r in s["results"]} for s in shards]
    assert not mine[0] & mine[1]
    assert sum(s["pairwise"] is not None for s in shards) == 1  # pairwise is one unit, on one shard
    merged = merge_records(shards, ["s1/crosscheck.json", "s2/crosscheck.json"])
    validate(merged)
    assert _coverage(merged) == _coverage(whole)
    assert merged["summary"] == whole["summary"]
    # Feature-combination coverage is united over the shards: the same pairs, triples and counts as the whole run.
    assert _combinations(merged) == _combinations(whole)
    assert all("partial" not in c for c in merged["coverage"].values())
    (group,) = merged["sharding"]
    assert group["complete"] and group["present"] == [1, 2] and incomplete_note(merged["sharding"]) is None


def test_a_missing_shard_is_noted_in_the_merge_and_the_report(shards: list[dict[str, Any]]) -> None:
    merged = merge_records(shards[:1], ["s1/crosscheck.json"])
    (group,) = merged["sharding"]
    assert not group["complete"] and group["missing"] == [2]
    note = incomplete_note(merged["sharding"])
    assert note is not None and "missing shard 2/2" in note
    assert "Incomplete sharded run" in render_html(merged)
    assert "Incomplete sharded run" in render_html(shards[0])  # one shard's own report says it is part of a run
    assert "Incomplete sharded run" not in render_html(merge_records(shards, ["a.json", "b.json"]))


def test_a_shard_given_twice_or_out_of_range_is_refused(shards: list[dict[str, Any]]) -> None:
    with pytest.raises(CrosscheckError, match="given twice"):
        merge_records([shards[0], copy.deepcopy(shards[0])], ["a/crosscheck.json", "b/crosscheck.json"])
    bad = copy.deepcopy(shards[1])
    bad["run"]["shard"] = "3/2"
    validate(bad)  # the schema only pins the form I/N
    with pytest.raises(CrosscheckError, match="does not exist"):
        merge_records([shards[0], bad], ["a/crosscheck.json", "b/crosscheck.json"])


def test_the_cli_merges_shards_and_warns_about_missing_ones(
    shards: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = []
    for i, s in enumerate(shards, 1):
        p = tmp_path / f"shard{i}" / "crosscheck.json"
        p.parent.mkdir()
        p.write_text(json.dumps(s, default=str))
        paths.append(str(p))
    out = tmp_path / "index.html"
    assert main(["report", "merge", *paths, "-o", str(out), "--json", str(tmp_path / "merged.json")]) == 0
    assert "all 2 shards present" in capsys.readouterr().out
    assert load(tmp_path / "merged.json")["sharding"][0]["complete"]
    assert main(["report", "merge", paths[1], "-o", str(out)]) == 0
    assert "missing shard 1/2" in capsys.readouterr().err
    assert "Incomplete sharded run" in out.read_text(encoding="utf-8")


def test_the_cli_runs_a_shard_and_says_which(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ran: list[tuple[str, str]] = []
    for i in (1, 2):
        args = ["run", "--backends", "numpy", "--properties", "linearity,matches_reference", "--max-examples", "2"]
        code = main([*args, "--seed", "1", "--no-isolation", "--shard", f"{i}/2", "--out", str(tmp_path / str(i))])
        assert code == 0
        assert f"shard {i}/2 of plan" in capsys.readouterr().out
        record = load(tmp_path / str(i) / "crosscheck.json")
        assert record["run"]["shard"] == f"{i}/2"
        ran += [(r["backend"], r["property"]) for r in record["results"]]
    assert sorted(ran) == [("numpy", "linearity"), ("numpy", "matches_reference")]
