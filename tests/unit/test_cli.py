from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crosscheck.cli.main import main
from crosscheck.run.record import load


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crosscheck", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_import_crosscheck_loads_no_framework() -> None:
    code = (
        "import sys, crosscheck, crosscheck.cli.main, crosscheck.backends, crosscheck.properties.base\n"
        "from crosscheck.backends import registry\n"
        "heavy = [m for m in ('torch', 'tensorflow', 'jax', 'onnx', 'onnxruntime', 'scipy') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_run_writes_a_valid_record(tmp_path: Path) -> None:
    proc = run_cli(
        "run", "--backends", "numpy,scipy.correlate", "--max-examples", "20", "--seed", "3", "--out", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    record = load(tmp_path / "crosscheck.json")
    assert {r["backend"] for r in record["results"]} == {"numpy", "scipy.correlate"}
    assert record["run"]["seed"] == 3
    # matches_reference runs the backend's covering sweep (strategies.coverage) before its 20 random examples.
    matches = [r for r in record["results"] if r["property"] == "matches_reference"]
    assert all(r["examples"] == 20 + r["sweep_examples"] > 20 for r in matches)
    # Every result that ran passed, and the summary counts them and the pairwise agreement.
    assert {r["status"] for r in record["results"]} <= {"passed", "unsupported"}
    passed = sum(r["status"] == "passed" for r in record["results"]) + 1
    assert f"{passed} passed, 0 failed" in proc.stdout


def test_same_seed_same_examples(tmp_path: Path) -> None:
    outs = []
    for i in range(2):
        assert (
            main(
                ["run", "--backends", "numpy", "--max-examples", "15", "--seed", "11", "--out", str(tmp_path / str(i))]
            )
            == 0
        )
        rec = json.loads((tmp_path / str(i) / "crosscheck.json").read_text())
        outs.append([(r["features"], r["by_dtype"]) for r in rec["results"]])
    assert outs[0] == outs[1]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--backends", "nonsense"], "unknown backend 'nonsense'"),
        (["run", "--max-examples", "0"], "expected a positive integer"),
        (["run", "--distinct-bugs", "0"], "expected a positive integer"),
        (["run", "--max-examples", "many"], "expected a positive integer"),
        (["run", "--seed", "-1"], "non-negative seed"),
        (["run", "--profile", "fast"], "invalid choice"),
        (["run", "--properties", "is_commutative"], "unknown property 'is_commutative'"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    proc = run_cli(*args, "--out", str(tmp_path)) if args[:1] == ["run"] else run_cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_a_mismatch_exits_1_and_still_writes_the_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crosscheck.backends import registry

    monkeypatch.setitem(registry.BUILTIN, "broken", "tests_support_broken:BrokenBackend")
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "support"))
    code = main(["run", "--backends", "broken,numpy", "--max-examples", "30", "--out", str(tmp_path)])
    assert code == 1
    record = load(tmp_path / "crosscheck.json")
    status = {(r["backend"], r["property"]): r["status"] for r in record["results"]}
    assert status[("broken", "matches_reference")] == "failed"
    assert status[("numpy", "matches_reference")] == "passed"
    failure = next(r for r in record["results"] if r["status"] == "failed")["failures"][0]
    assert "Mismatched elements" in failure["message"]


def test_backends_command_lists_every_backend() -> None:
    proc = run_cli("backends")
    assert proc.returncode == 0
    for name in ("numpy", "scipy.correlate", "scipy.ndimage", "torch", "tensorflow", "jax", "onnxruntime"):
        assert name in proc.stdout
