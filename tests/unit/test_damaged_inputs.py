"""Damaged or hostile inputs: records nested too deep or too large, a record merged twice, a target returning
the wrong type. Each is one line (or a named failure), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_support import one_line_error, passing_record

from crosscheck.cli.main import main
from crosscheck.run import record as rec
from crosscheck.verify import verify

HERE = Path(__file__).parents[1] / "support"


@pytest.fixture(scope="module")
def record_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "crosscheck.json"
    rec.write(passing_record(), path)
    return path


@pytest.mark.parametrize("levels", [rec.MAX_DEPTH + 1, 500, 100_000])
@pytest.mark.parametrize("command", ["render", "merge"])
def test_a_deeply_nested_record_is_refused_in_one_line(
    levels: int, command: str, record_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = json.loads(record_file.read_text())
    record["run"]["note"] = json.loads("[" * levels + "]" * levels) if levels < 1000 else None
    text = json.dumps(record)
    if levels >= 1000:  # deeper than json.dumps can write: spliced in as text
        text = text.replace('"note": null', '"note": ' + "[" * levels + "]" * levels)
    bad = tmp_path / "deep.json"
    bad.write_text(text)
    args = ["report", "render", str(bad)] if command == "render" else ["report", "merge", str(bad), str(record_file)]
    assert main([*args, "-o", str(tmp_path / "x.html")]) == 2
    assert f"nested deeper than {rec.MAX_DEPTH} levels" in one_line_error(capsys)
    assert not (tmp_path / "x.html").exists()


def test_a_record_just_within_the_depth_limit_loads(record_file: Path, tmp_path: Path) -> None:
    record = json.loads(record_file.read_text())
    record["run"]["note"] = json.loads("[" * (rec.MAX_DEPTH - 2) + "]" * (rec.MAX_DEPTH - 2))  # root, run: 2 levels
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(record))
    assert rec.load(ok)["run"]["note"]


def test_an_oversized_record_is_refused_without_reading_it_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(rec, "MAX_RECORD_BYTES", 1000)
    big = tmp_path / "big.json"
    big.write_text(" " * 5000 + "{}")
    assert main(["report", "render", str(big), "-o", str(tmp_path / "x.html")]) == 2
    assert "larger than a record may be" in one_line_error(capsys)


def test_an_unsharded_record_merged_twice_is_refused(
    record_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy.json"
    copy.write_bytes(record_file.read_bytes())
    assert main(["report", "merge", str(record_file), str(copy), "-o", str(tmp_path / "m.html")]) == 2
    assert f"{copy}: the same run as {record_file}" in one_line_error(capsys)
    assert not (tmp_path / "m.html").exists()
    # Two different runs still merge.
    other = tmp_path / "other.json"
    rec.write(passing_record(seed=2), other)
    assert main(["report", "merge", str(record_file), str(other), "-o", str(tmp_path / "m.html")]) == 0


def test_a_target_returning_a_list_is_named_as_such() -> None:
    v = verify(f"{HERE / 'verify_targets' / 'returns_list.py'}:conv", dims=(1,), max_examples=5, seed=1)
    assert v.status == "failed" and v.exit_code == 1
    message = v.failures[0]["message"]
    assert "returned list, expected numpy.ndarray" in message
    assert "Dtype mismatch" not in message
