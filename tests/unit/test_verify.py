"""`crosscheck verify` and its Python API, on correct and deliberately wrong convolutions.

The "caught" tests use the default settings (200 examples per property, float32, 1-3-D, isolated);
tests/support/verify_targets/measure.py measures how many examples each wrong target needs over more seeds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crosscheck.core.errors import CrosscheckError
from crosscheck.run.record import load
from crosscheck.verify import assert_verified, forward_properties, load_target, verify

TARGETS = Path(__file__).parents[1] / "support" / "verify_targets"
SEEDS = (0, 1, 2)

# target -> a phrase the failure message must contain
WRONG = {
    "flipped": "Values are not",
    "swapped_padding": "Values are not",
    "wrong_groups": "Values are not",
    "wrong_length": "Shape mismatch",
    "nan_on_some": "actual nan",
    "localized_error": "Mismatched elements: 1 /",
    "wrong_shape": "Shape mismatch",
    "wrong_dtype": "Dtype mismatch: expected float32, got float64",
}


def target(name: str, fn: str = "conv") -> str:
    return f"{TARGETS / name}.py:{fn}"


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crosscheck", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(WRONG))
def test_a_wrong_convolution_is_caught_at_the_default_settings(name: str, seed: int) -> None:
    v = verify(target(name), seed=seed)
    assert v.status == "failed" and v.exit_code == 1, f"{name} slipped through: {v.text()}"
    # The target's own bug among the (up to 3) distinct ones: nan_on_some's y / norm * norm is also off by an ulp,
    # which the covering sweep may meet first.
    first = next((f for f in v.failures if WRONG[name] in f["message"]), v.failures[0])
    assert WRONG[name] in first["message"], first["message"]
    assert "load_target(" in first["reproducer"] and "make_problem" in first["reproducer"]
    spec = first["problem"]["spec"]  # shrunk to the feature that the bug needs
    if name == "wrong_groups":
        assert spec["in_channels"] // spec["groups"] > 1 and spec["groups"] > 1
    if name == "wrong_length":
        assert max(spec["stride"]) > 1
    if name == "swapped_padding":
        assert any(lo != hi for lo, hi in spec["padding"])


CORE = ("matches_reference", "is_cross_correlation")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ["correct_im2col", "correct_fft"])
def test_a_correct_convolution_by_another_algorithm_is_verified(name: str, seed: int) -> None:
    # Every property at the default settings for one seed; the two reference properties for the others.
    v = verify(target(name), seed=seed, properties=None if seed == SEEDS[0] else CORE)
    assert v.status == "verified" and v.exit_code == 0, v.text()
    by = {(r["backend"].rsplit(" [", 1)[1][:-1], r["property"]): r for r in v.record["results"]}
    assert (
        # matches_reference runs the covering sweep (crosscheck.strategies.coverage) before its 200 random examples.
        by["float32", "matches_reference"]["examples"] == 200 + by["float32", "matches_reference"]["sweep_examples"]
        and by["float32", "is_cross_correlation"]["examples"] == 200
    )
    if seed == SEEDS[0]:
        # Only the properties of a forward function, each run: none is listed as unsupported.
        assert {p for _, p in by} == set(forward_properties())
        assert all(r["status"] == "passed" for r in by.values())
        assert "unsupported" not in v.text() and "Capabilities" not in v.text()


def test_the_reproducer_reproduces() -> None:
    v = verify(target("swapped_padding"), seed=0, max_examples=50, properties=CORE)
    code = v.failures[0]["reproducer"]
    with pytest.raises(AssertionError, match="Values are not within the error bound"):
        exec(code, {})


@pytest.mark.parametrize("name", ["segfault", "aborts"])
def test_a_crash_is_reported_with_the_example_that_caused_it(name: str, tmp_path: Path) -> None:
    report = tmp_path / "verify.json"
    proc = run_cli("verify", target(name), "--seed", "0", "--report", str(report))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "crashed: its worker process was killed by SIG" in proc.stdout
    assert f"FAILED: {target(name)} crashed" in proc.stdout
    record = load(report)
    failure = record["results"][0]["failures"][0]
    assert failure["kind"] == "crash"
    spec = failure["problem"]["spec"]
    assert spec["groups"] > 1 if name == "segfault" else max(spec["dilation"]) > 1
    assert "crashed" in report.with_suffix(".html").read_text(encoding="utf-8")


def test_a_hang_is_reported_and_the_report_still_written(tmp_path: Path) -> None:
    report = tmp_path / "hang.json"
    proc = run_cli(
        "verify", target("hang"), "--seed", "0", "--timeout", "1", "--max-examples", "30", "--report", str(report)
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "hung: no answer within the 1 s timeout" in proc.stdout and "hang.py" in proc.stdout
    failure = load(report)["results"][0]["failures"][0]
    assert failure["kind"] == "hang" and failure["problem"]["spec"]["batch"] > 1


def test_a_crash_while_importing_is_a_crash_not_bad_usage(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc = run_cli("verify", target("crashes_on_import"), "--report", str(report))
    assert proc.returncode == 1
    assert "crashed" in proc.stdout and "while loading" in proc.stdout
    assert load(report)["results"][0]["status"] == "failed"


def test_the_cli_verifies_a_module_target_and_writes_the_report(tmp_path: Path) -> None:
    report = tmp_path / "ok.json"
    proc = subprocess.run(
        [sys.executable, "-m", "crosscheck", "verify", "verify_targets.correct_im2col:conv"]
        + ["--max-examples", "20", "--seed", "4", "--dims", "2", "--report", str(report)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1] / "support",
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verified: verify_targets.correct_im2col:conv" in proc.stdout
    record = load(report)
    ver = record["run"]["verify"]
    assert ver["target"] == "verify_targets.correct_im2col:conv" and ver["dims"] == [2]
    assert ver["dtypes"] == ["float64", "float32", "float16", "bfloat16", "int32", "int64"]
    assert ver["accuracy"] == "elementwise" and ver["declined"] == []
    assert all(k.startswith("rank=2") for r in record["results"] for k in r["features"] if k.startswith("rank="))
    assert report.with_suffix(".html").is_file()


def test_declined_ranks_are_listed_once_not_failed() -> None:
    v = verify(target("only_2d"), seed=0, max_examples=30, properties=CORE)
    assert v.status == "verified", v.text()
    declined = v.record["run"]["verify"]["declined"]
    assert {d["dtype"] for d in declined} == {"float64", "float32", "float16", "bfloat16", "int32", "int64"}
    assert all(d["ranks"] == [1, 3] and "only 2-D convolutions" in d["reason"] for d in declined)
    mr = v.record["results"][0]
    assert mr["examples"] == 30 + mr["sweep_examples"]
    assert all(k in ("rank=2",) for k in mr["features"] if k.startswith("rank="))
    assert "1-D, 3-D declined in every dtype: NotImplementedError: only 2-D convolutions" in v.text()


def test_a_function_that_supports_nothing_fails() -> None:
    v = verify(target("supports_nothing"), seed=0, max_examples=10, properties=CORE)
    assert v.status == "unsupported" and v.exit_code == 1
    assert "supported nothing at all" in v.text()
    declined = v.record["run"]["verify"]["declined"]
    assert len(declined) == 6 and all("not written yet" in d["reason"] for d in declined)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([target("raises_on_import")], "is not importable: RuntimeError: this convolution needs a GPU"),
        ([target("only_2d", "NOT_A_FUNCTION")], "is not callable"),
        ([target("only_2d", "nothing_here")], "has no attribute 'nothing_here'"),
        (["no_such_module_anywhere:conv"], "is not importable: ModuleNotFoundError"),
        (["tests/nowhere.py:conv"], "no such file"),
        (["just_a_name"], "expected 'package.module:function'"),
        ([target("flipped"), "--dtype", "float8"], "expected one or more of float64, float32"),
        ([target("flipped"), "--accuracy", "fft"], "expected one of elementwise, normwise, winograd"),
        ([target("flipped"), "--dims", "4"], "spatial dimensions among 1,2,3"),
        ([target("flipped"), "--timeout", "0"], "positive number of seconds"),
        ([target("flipped"), "--max-examples", "-3"], "positive integer"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args: list[str], needle: str) -> None:
    proc = run_cli("verify", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_python_api_takes_a_function() -> None:
    from verify_targets.correct_im2col import conv
    from verify_targets.flipped import conv as flipped

    v = assert_verified(conv, dims=(1,), max_examples=15, seed=3, properties=CORE)
    assert v.target == "verify_targets.correct_im2col:conv"
    with pytest.raises(AssertionError, match=r"FAILED: verify_targets\.flipped:conv does not match"):
        assert_verified(flipped, max_examples=15, seed=3)


def test_the_python_api_runs_a_closure_in_process_only() -> None:
    from verify_targets._conv import correlate

    def local(x: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
        return correlate(x, w, **kw)  # type: ignore[arg-type]

    with pytest.raises(CrosscheckError, match="does not pickle"):
        verify(local, max_examples=5)
    v = verify(local, isolate=False, max_examples=10, seed=1, properties=CORE)
    assert v.ok and v.record["run"]["isolation"]["enabled"] is False


def test_load_target_refuses_what_it_cannot_call() -> None:
    with pytest.raises(CrosscheckError, match="not callable"):
        load_target(target("only_2d", "NOT_A_FUNCTION"))
    assert callable(load_target(target("flipped")))


def test_a_seeded_verify_draws_the_same_problems_from_any_folder(tmp_path: Path) -> None:
    # The coverage plans were seeded by the target's name, which holds its folder: the same seed drew other problems
    # in another checkout (CI's clone drew a rate-36 DeepLab layer that this one never did). Now the file's own name.
    drawn = []
    for where in ("a", "b/c"):
        folder = tmp_path / where / "verify_targets"
        shutil.copytree(TARGETS, folder, ignore=shutil.ignore_patterns("__pycache__"))
        v = verify(f"{folder / 'correct_im2col.py'}:conv", dtypes="float32", seed=0, max_examples=10)
        assert v.status == "verified", v.text()
        drawn.append([(r["property"], r["examples"], r["features"]) for r in v.record["results"]])
    assert drawn[0] == drawn[1]
