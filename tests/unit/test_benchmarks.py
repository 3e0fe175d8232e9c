"""The benchmark script runs and reports every figure's structure (its timings are not asserted: speed
targets live in benchmarks/, never in timed tests)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "run_benchmarks.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_benchmarks", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_benchmarks"] = module
    spec.loader.exec_module(module)
    return module


def test_the_reference_sweep_times_both_sides(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch", reason="the sweep compares with torch: pip install 'crosscheck[torch]'")
    monkeypatch.setattr(bench, "SWEEP", [(1, 2, 3, 8), (1, 16, 16, 48)])
    monkeypatch.setattr(bench.time, "sleep", lambda _s: None)
    rows = bench.reference_sweep(quick=True)
    assert [(r["dtype"], r["macs"]) for r in rows][:2] == [("float32", 2 * 3 * 64 * 9), ("float64", 2 * 3 * 64 * 9)]
    assert all(r["reference_s"] > 0 and r["torch_f64_s"] > 0 and r["ratio"] > 0 for r in rows)
    out = capsys.readouterr().out
    assert "gemm" in out and ("meets" in out or "MISSES" in out)  # the 2.6e6-MAC rows carry a verdict
    shares = bench.flop_rates(rows, quick=True)
    assert {r["dtype"] for r in shares} == {"float32", "float64"} and all(0 < r["share"] for r in shares)


def test_rates_add_up_per_backend(bench: ModuleType) -> None:
    record: dict[str, Any] = {
        "results": [
            {
                "backend": "a",
                "property": "p",
                "status": "passed",
                "examples": 100,
                "duration_s": 1.0,
                "examples_per_second": 100.0,
            },
            {
                "backend": "a",
                "property": "q",
                "status": "failed",
                "examples": 50,
                "duration_s": 1.0,
                "examples_per_second": 50.0,
            },
            {
                "backend": "a",
                "property": "r",
                "status": "unsupported",
                "examples": 0,
                "duration_s": 0.0,
                "examples_per_second": None,
            },
        ]
    }
    rates, overall = bench._rates(record)
    assert rates == {"a": {"p": 100.0, "q": 50.0}} and overall == {"a": 75.0}


def test_the_command_line_lists_its_sections(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    assert "--quick" in capsys.readouterr().out


def test_an_unknown_section_is_a_usage_error(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--only", "reference,speed"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("--only: unknown section speed; expected reference, examples, wall, isa, realistic, ported")


def test_the_layer_sweep_times_every_rank_and_kind(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch", reason="the sweep compares with torch: pip install 'crosscheck[torch]'")
    layers = [
        ("1x1", 1, 4, 2, (5, 5), (1, 1), 1, 1, 1),
        ("depthwise", 1, 4, 4, (6, 5), (3, 3), 4, 1, 1),
        ("3-D dilated", 1, 2, 2, (5, 5, 5), (3, 3, 3), 1, 2, 1),
        ("1-D strided", 2, 3, 2, (9,), (3,), 1, 1, 2),
    ]
    monkeypatch.setattr(bench, "LAYERS", layers)
    monkeypatch.setattr(bench.time, "sleep", lambda _s: None)
    rows = bench.layer_sweep(quick=True)
    expected = [(layer[0], dtype) for layer in layers for dtype in ("float32", "float64")]
    assert [(r["layer"], r["dtype"]) for r in rows] == expected
    assert all(r["reference_s"] > 0 and r["torch_f64_s"] > 0 for r in rows)


def test_reference_share_times_the_reference_of_a_run(tmp_path: Path) -> None:
    import json
    import subprocess

    script = SCRIPT.parent / "reference_share.py"
    seconds = tmp_path / "seconds.json"
    args = ["run", "--backends", "numpy", "--properties", "matches_reference,gradient_input", "--max-examples", "3"]
    proc = subprocess.run(
        [sys.executable, str(script), str(seconds), "--", *args, "--no-pairwise", "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(seconds.read_text())
    # matches_reference calls reference(); gradient_input calls the gradient module's functions, which the
    # property imports by name: both must be timed, each example at least once.
    assert got["calls"] >= 6 and 0 < got["reference_s"] < got["wall_s"] and got["exit"] == 0


def test_reference_share_counts_nested_calls_once(bench: ModuleType) -> None:
    import subprocess

    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import reference_share as r; r.instrument(); "
        "from crosscheck import ConvSpec, make_problem; from crosscheck.reference import reference; "
        "p = make_problem(ConvSpec(batch=1, in_channels=2, out_channels=2, in_size=(6,), kernel=(3,), "
        "dtype='float64'), 0); "
        "reference(p); reference(p, 'direct'); print(r.totals['calls'])"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(SCRIPT.parent)], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["2"]


def test_reference_share_refuses_a_bad_command_line_in_one_line() -> None:
    import subprocess

    script = SCRIPT.parent / "reference_share.py"
    proc = subprocess.run([sys.executable, str(script), "seconds.json", "run"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "usage" in proc.stderr
