from __future__ import annotations

import json
from pathlib import Path

import pytest

from crosscheck.core.errors import CrosscheckError
from crosscheck.run.record import SCHEMA_VERSION, load, validate, write
from crosscheck.run.session import RunOptions, run


@pytest.fixture(scope="module")
def record() -> dict:  # type: ignore[type-arg]
    return run(RunOptions(backends=["numpy"], max_examples=10, seed=1))


def test_record_validates_and_round_trips(record: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    validate(record)
    write(record, tmp_path / "r.json")
    assert load(tmp_path / "r.json") == json.loads(json.dumps(record))


def test_record_carries_environment_and_capabilities(record: dict) -> None:  # type: ignore[type-arg]
    env = record["environment"]
    assert env["packages"]["numpy"] and env["python"]
    (numpy_entry,) = [b for b in record["backends"] if b["name"] == "numpy"]
    assert numpy_entry["capabilities"]["dtypes"]
    for r in record["results"]:
        # A property the backend cannot run (numpy has no gradients) records its reason instead.
        assert r["features"] or (r["status"] == "unsupported" and r["reason"]), r


def test_other_schema_version_is_refused(record: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    path = tmp_path / "future.json"
    path.write_text(json.dumps({**record, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(CrosscheckError, match="schema version 2 is not supported"):
        load(path)


@pytest.mark.parametrize("text", ["{", "[]", '{"schema": "crosscheck-record"}', ""])
def test_damaged_record_is_refused_in_one_line(text: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(CrosscheckError) as info:
        load(path)
    assert "\n" not in str(info.value)


def test_non_finite_statistics_do_not_lose_the_record(record: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    broken = json.loads(json.dumps(record))
    first = next(iter(broken["results"][0]["by_dtype"].values()))
    first["max_ulp"] = float("inf")
    write(broken, tmp_path / "r.json")
    assert next(iter(load(tmp_path / "r.json")["results"][0]["by_dtype"].values()))["max_ulp"] is None
