"""`crosscheck run` writing the report, `crosscheck report render|merge`, bad records, Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from report_support import Record, passing_record

from crosscheck.backends.numpy_backend import NumpyBackend
from crosscheck.cli.main import main
from crosscheck.run.record import SCHEMA_VERSION, load, write
from crosscheck.strategies.coverage import Guide


@pytest.fixture(scope="module")
def record_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "crosscheck.json"
    write(passing_record(), path)
    return path


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_run_writes_json_and_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--backends", "numpy", "--max-examples", "5", "--seed", "1", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr()
    assert " passed, 0 failed" in out.out and f"report: {tmp_path / 'crosscheck.html'}" in out.out
    swept = len(Guide("numpy", NumpyBackend().capabilities()).sweep())  # matches_reference's covering sweep
    assert f"numpy / matches_reference: {5 + swept} examples" in out.err  # the progress, as a log shows it
    html = (tmp_path / "crosscheck.html").read_text()
    assert load(tmp_path / "crosscheck.json")["run"]["seed"] == 1
    assert "numpy" in html and "Every check holds" in html


def test_render_writes_the_report(record_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "deep" / "r.html"
    assert main(["report", "render", str(record_file), "-o", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_render_defaults_to_beside_the_record(record_file: Path) -> None:
    assert main(["report", "render", str(record_file)]) == 0
    assert record_file.with_suffix(".html").exists()


def test_merge_writes_one_report_and_the_merged_record(record_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "shard-b" / "crosscheck.json"
    write(passing_record(seed=9, backends=("numpy",)), other)
    out, merged = tmp_path / "index.html", tmp_path / "merged.json"
    assert main(["report", "merge", str(record_file), str(other), "-o", str(out), "--json", str(merged)]) == 0
    assert "Shard shard-b" in out.read_text()
    assert len(load(merged)["shards"]) == 2


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{", "damaged record (not JSON"),
        ("", "damaged record (not JSON"),
        ('{"schema": "crosscheck-record", "schema_version": 1}', "not a valid crosscheck record"),
        ("[]", "not a valid crosscheck record"),
        (b"\x89PNG\r\n\x1a\n\x00\xff", "damaged record (not UTF-8"),
    ],
)
def test_damaged_records_are_refused_in_one_line(
    content: str | bytes, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["report", "render", str(bad), "-o", str(tmp_path / "x.html")]) == 2
    assert needle in _one_line_error(capsys)
    assert not (tmp_path / "x.html").exists()


def test_other_schema_version_is_refused(record_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    future = tmp_path / "future.json"
    future.write_text(json.dumps({**json.loads(record_file.read_text()), "schema_version": SCHEMA_VERSION + 1}))
    assert main(["report", "merge", str(record_file), str(future), "-o", str(tmp_path / "x.html")]) == 2
    assert f"schema version {SCHEMA_VERSION + 1} is not supported" in _one_line_error(capsys)


def test_record_damaged_inside_a_valid_shape_is_refused(
    record_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec: Record = json.loads(record_file.read_text())
    next(iter(rec["results"][0]["by_dtype"].values()))["histogram"] = ["many", None]
    bad = tmp_path / "odd.json"
    bad.write_text(json.dumps(rec))
    assert main(["report", "render", str(bad), "-o", str(tmp_path / "x.html")]) == 2
    assert "cannot render it" in _one_line_error(capsys)


def test_merging_a_shard_twice_is_refused(record_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "merge", str(record_file), str(record_file)]) == 2
    assert "given twice" in _one_line_error(capsys)


@pytest.mark.parametrize("args", [["report"], ["report", "render"], ["report", "merge"], ["report", "show", "x"]])
def test_report_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    _one_line_error(capsys)


def test_ctrl_c_stops_cleanly_and_writes_what_finished(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "crosscheck", "run", "--backends", "numpy", "--max-examples", "100000"]
    proc = subprocess.Popen(
        [*cmd, "--no-pairwise", "--out", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    while "running" not in (proc.stderr.readline() or "") and time.monotonic() < deadline:
        pass  # the first property is under way: its first example has finished
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    record = load(tmp_path / "crosscheck.json")
    assert record["run"]["interrupted"] is True
    (first,) = record["results"]
    assert first["status"] == "interrupted" and first["examples"] > 0
    assert "Interrupted" in (tmp_path / "crosscheck.html").read_text()
