"""Output paths checked before any work, inputs never overwritten, atomic writes, concurrent writers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from process_support import Crosscheck
from report_support import one_line_error, passing_record

from crosscheck.cli.main import main
from crosscheck.core.errors import CrosscheckError
from crosscheck.run import outputs
from crosscheck.run.record import load, write

HERE = Path(__file__).parents[1] / "support"


@pytest.fixture(scope="module")
def record_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "crosscheck.json"
    write(passing_record(), path)
    return path


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".probe")))


def test_render_refuses_to_overwrite_its_record(
    record_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = _copy(record_file, tmp_path / "x.json")
    before = rec.read_bytes()
    assert main(["report", "render", str(rec), "-o", str(rec)]) == 2
    assert "is the input" in one_line_error(capsys)
    # The default output of a record named .html is the record itself: refused too.
    html_named = _copy(record_file, tmp_path / "y.html")
    assert main(["report", "render", str(html_named)]) == 2
    assert "is the input" in one_line_error(capsys)
    # Through another spelling of the same file (a symbolic link).
    (tmp_path / "link.json").symlink_to(rec)
    assert main(["report", "render", str(rec), "-o", str(tmp_path / "link.json")]) == 2
    assert "is the input" in one_line_error(capsys)
    assert rec.read_bytes() == before and html_named.read_bytes() == before
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("flag", ["-o", "--json"])
def test_merge_refuses_to_overwrite_an_input(
    flag: str, record_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _copy(record_file, tmp_path / "a.json")
    b = tmp_path / "b.json"
    write({**load(record_file), "run": {**load(record_file)["run"], "started": "2026-01-01T00:00:00+00:00"}}, b)
    before = a.read_bytes()
    other = ["--json", str(tmp_path / "m.json")] if flag == "-o" else ["-o", str(tmp_path / "m.html")]
    assert main(["report", "merge", str(a), str(b), flag, str(a), *other]) == 2
    assert f"{a}: this output is the input {a}" in one_line_error(capsys)
    assert a.read_bytes() == before
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "m.html").exists()


def test_merge_refuses_the_same_file_for_json_and_html(
    record_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.html"
    assert main(["report", "merge", str(record_file), "-o", str(out), "--json", str(out)]) == 2
    assert "two different outputs" in one_line_error(capsys)


def _blocked_out(tmp_path: Path, case: str) -> tuple[Path, str]:
    """An --out folder that cannot take the record, and the words of its error."""
    if case == "out is a file":
        (tmp_path / "f").write_text("x")
        return tmp_path / "f", "is not a folder"
    if case == "out under a file":
        (tmp_path / "f").write_text("x")
        return tmp_path / "f" / "sub", "cannot create the output folder"
    if case == "record is a folder":
        (tmp_path / "o" / "crosscheck.json").mkdir(parents=True)
        return tmp_path / "o", "is a folder"
    assert case == "folder takes no files"
    return Path("/proc"), "cannot write in"  # not even root creates files there (a mode would not stop root)


BLOCKED = ["out is a file", "out under a file", "record is a folder", "folder takes no files"]


@pytest.mark.parametrize("case", BLOCKED)
def test_run_refuses_an_unwritable_out_before_running(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, words = _blocked_out(tmp_path, case)
    t0 = time.monotonic()
    code = main(["run", "--backends", "numpy", "--max-examples", "100000", "--out", str(out)])
    assert code == 2
    err = one_line_error(capsys)
    assert words in err
    assert time.monotonic() - t0 < 30  # refused up front, not after 100000 examples
    assert capsys.readouterr().out == ""  # no summary: nothing ran


def test_run_creates_its_out_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a" / "b"
    assert main(["run", "--backends", "numpy", "--max-examples", "3", "--no-pairwise", "--out", str(out)]) == 0
    assert load(out / "crosscheck.json")["results"] and (out / "crosscheck.html").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["crosscheck.html", "crosscheck.json"]  # no temporary left


def test_verify_refuses_an_unwritable_report_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    code = main(
        ["verify", f"{HERE / 'verify_targets' / 'flipped.py'}:conv", "--report", str(tmp_path / "f" / "r.json")]
    )
    assert code == 2
    assert "is not a folder" in one_line_error(capsys)
    assert capsys.readouterr().out == ""


def test_write_atomic_leaves_no_temporary_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "crosscheck.json"
    target.write_text("old")

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError):
        outputs.write_atomic(target, "new")
    assert target.read_text() == "old" and _leftovers(tmp_path) == []
    monkeypatch.undo()
    outputs.write_atomic(target, "new")
    assert target.read_text() == "new" and _leftovers(tmp_path) == []
    # The mode of any new file (not mkstemp's 0600): a report is meant to be read by others.
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_write_is_one_line_and_keeps_the_old_pair(
    record_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.html"
    assert main(["report", "render", str(record_file), "-o", str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    real = os.replace

    def full(src: str, dst: str) -> None:
        if str(dst).endswith(".html"):
            raise OSError(28, "No space left on device", str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", full)
    assert main(["report", "render", str(record_file), "-o", str(out)]) == 2
    assert "No space left on device" in one_line_error(capsys)
    assert out.read_bytes() == before and _leftovers(tmp_path) == []


def test_prepare_names_the_problem() -> None:
    with pytest.raises(CrosscheckError, match="is a folder"):
        outputs.prepare([Path("/")])


WRITER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from crosscheck.run.outputs import write_together
    folder, tag, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    pad = "x" * 200_000  # large enough that a torn read would show
    for i in range(rounds):
        text = json.dumps({"tag": tag, "round": i, "pad": pad})
        write_together({folder / "crosscheck.json": text, folder / "crosscheck.html": f"<!-- {tag} {i} -->" + pad})
    """
)


def test_concurrent_writers_never_tear_or_mix_a_pair(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])}
    rounds = 150
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), tag, str(rounds)], env=env) for tag in "AB"
    ]
    torn = reads = 0
    while any(w.poll() is None for w in writers):
        try:
            text = (tmp_path / "crosscheck.json").read_text()
        except FileNotFoundError:
            continue
        reads += 1
        try:
            json.loads(text)
        except ValueError:
            torn += 1
    assert [w.wait(120) for w in writers] == [0, 0]
    assert torn == 0, f"{torn} torn reads of {reads}"
    final = json.loads((tmp_path / "crosscheck.json").read_text())
    html = (tmp_path / "crosscheck.html").read_text()
    # Both files of the last writer: never the JSON of one run and the HTML of the other.
    assert html.startswith(f"<!-- {final['tag']} {rounds - 1} -->")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crosscheck.html", "crosscheck.json"]


def test_two_runs_racing_for_one_folder_both_finish_and_leave_one_pair(tmp_path: Path) -> None:
    seeds = (11, 22)
    base = ["run", "--backends", "numpy", "--max-examples", "5", "--no-pairwise", "--out", str(tmp_path)]
    runs = [Crosscheck([*base, "--seed", str(s)]) for s in seeds]
    try:
        results = [r.finish(timeout=300) for r in runs]
    finally:
        for r in runs:
            r.kill()
    assert [code for code, _, _ in results] == [0, 0], results
    assert all(" passed, 0 failed" in out for _, out, _ in results)  # neither lost its summary
    record = load(tmp_path / "crosscheck.json")
    assert record["run"]["seed"] in seeds
    assert f"seed <b>{record['run']['seed']}</b>" in (tmp_path / "crosscheck.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crosscheck.html", "crosscheck.json"]
