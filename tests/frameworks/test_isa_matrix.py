"""`crosscheck run --isa`: one machine checks the kernels of older CPUs, each level in capped worker processes.

The meta-tests use stand-in backends installed as a real plugin distribution (a package and its dist-info on
sys.path, which the workers inherit): one that is wrong only when ONEDNN_MAX_CPU_ISA=AVX2 is in its environment,
and one that ignores its cap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crosscheck.core import hardware
from crosscheck.core.errors import CrosscheckError
from crosscheck.core.hardware import LEVELS, NATIVE, isa_rank, level_env, machine_levels, parse_levels
from crosscheck.report.merge import merge_records
from crosscheck.run.session import RunOptions, run_levels

STAND_INS = '''
"""Stand-ins whose kernels depend on ONEDNN_MAX_CPU_ISA, like torch's and TensorFlow's."""
import os

from crosscheck.backends.base import Capabilities
from crosscheck.backends.numpy_backend import NumpyBackend
from crosscheck.core.hardware import cpu, onednn_class


class IsaSensitive(NumpyBackend):
    name = "isa-sensitive"
    framework = "isa-demo"
    isa_switches = ("ONEDNN_MAX_CPU_ISA",)

    def dispatch(self):
        cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
        return {"isa_class": onednn_class(cap) if cap else cpu()["isa_class"], "source": "stand-in: its cap"}

    def capabilities(self):
        return Capabilities(dtypes=("float64",), padding=("explicit", "VALID"), groups=False)

    def run(self, problem):
        y = super().run(problem)
        if os.environ.get("ONEDNN_MAX_CPU_ISA") == "AVX2":  # a bug in the "AVX2 kernels" only
            y = y + 1e-3 * (abs(y) + 1)
        return y


class CapIgnored(IsaSensitive):
    name = "cap-ignored"

    def dispatch(self):
        return {"isa_class": cpu()["isa_class"], "source": "stand-in that ignores its cap"}
'''

ENTRY_POINTS = """\
[crosscheck.backends]
isa-sensitive = crosscheck_isa_demo:IsaSensitive
cap-ignored = crosscheck_isa_demo:CapIgnored
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pkg = tmp_path / "crosscheck_isa_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(STAND_INS), encoding="utf-8")
    info = tmp_path / "isa_demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: isa-demo\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(ENTRY_POINTS, encoding="utf-8")
    (info / "RECORD").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    # "native" adds no cap but keeps the caller's: the meta-tests need a native level without one (the suite also
    # runs under ONEDNN_MAX_CPU_ISA=AVX2 as a whole).
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    return tmp_path


def _needs_avx2_below() -> None:
    if "avx2" not in machine_levels():
        pytest.skip(f"this CPU ({hardware.cpu()['isa_class']}) has no level below it to cap to")


def _options(backends: list[str], props: list[str] | None = None) -> RunOptions:
    return RunOptions(
        backends=backends, properties=props or ["matches_reference"], profile="ci", max_examples=30, pairwise=False
    )


def test_a_bug_in_one_levels_kernels_is_caught_under_that_cap_and_passes_natively(site: Path) -> None:
    _needs_avx2_below()
    record = run_levels(_options(["isa-sensitive"]), [NATIVE, "avx2"])
    rows = {r["backend"]: r for r in record["results"]}
    assert rows["isa-sensitive"]["status"] == "passed" and rows["isa-sensitive"]["isa"] == NATIVE
    capped = rows["isa-sensitive@avx2"]
    assert capped["status"] == "failed" and capped["isa"] == "avx2"
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in capped["failures"][0]["reproducer"]  # the worker's caps, not this process's
    assert record["run"]["isa_levels"] == [NATIVE, "avx2"]
    assert record["environment"]["dispatch"]["isa-sensitive@avx2"]["isa_class"] == "avx2"
    assert record["summary"]["failed"] == 1


def test_a_cap_that_does_not_take_effect_fails_loudly(site: Path) -> None:
    _needs_avx2_below()
    record = run_levels(_options(["cap-ignored"], ["matches_reference", "is_cross_correlation"]), ["avx2"])
    rows = [r for r in record["results"] if r["backend"] == "cap-ignored@avx2"]
    assert [r["status"] for r in rows] == ["error", "error"]
    assert "the ISA cap did not take effect: with ONEDNN_MAX_CPU_ISA=AVX2" in str(rows[0]["reason"])
    assert record["summary"]["error"] == 2


def test_a_backend_without_a_switch_runs_at_the_native_level_only() -> None:
    _needs_avx2_below()
    record = run_levels(_options(["scipy.correlate"]), [NATIVE, "avx2"])
    assert [r["backend"] for r in record["results"]] == ["scipy.correlate"]
    entry = next(b for b in record["backends"] if b["name"] == "scipy.correlate@avx2")
    assert entry["available"] is False and "has no ISA switch" in entry["reason"] and entry["isa"] == "avx2"


def test_levels_are_parsed_against_this_machine() -> None:
    here = hardware.cpu()["isa_class"]
    assert parse_levels("native") == [NATIVE]
    assert parse_levels("all") == machine_levels() and machine_levels()[0] == NATIVE
    assert all(isa_rank(level) < isa_rank(here) for level in machine_levels()[1:])
    if here in LEVELS:
        assert parse_levels(here) == [NATIVE]  # its own level needs no cap
    with pytest.raises(CrosscheckError, match="unknown level 'avx9'"):
        parse_levels("avx9")
    above = [level for level in LEVELS if isa_rank(level) > isa_rank(here)]
    if above:
        with pytest.raises(CrosscheckError, match=f"{above[-1]} is above this CPU .*a cap only lowers"):
            parse_levels(f"native,{above[-1]}")


def test_each_switch_is_set_for_a_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2 --xla_cpu_max_isa=AMX")
    torch_like = level_env("avx2", ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"))
    assert torch_like == {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    assert level_env("avx512-bf16", ("XLA_FLAGS",)) == {
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2 --xla_cpu_max_isa=AVX512_BF16"
    }
    assert level_env("avx512", ("OPENBLAS_CORETYPE",)) == {"OPENBLAS_CORETYPE": "SkylakeX"}
    assert level_env(NATIVE, ("ONEDNN_MAX_CPU_ISA",)) == {}
    assert hardware.expected_class("avx512-fp16", ("XLA_FLAGS",)) == "avx512-bf16"  # XLA has no FP16 level
    assert hardware.expected_class("avx2", ("OPENBLAS_CORETYPE",)) == "avx2"


def test_records_of_separate_levels_merge_into_rows_per_level() -> None:
    """Two jobs (a CI matrix axis), one per level, merged by `crosscheck report merge`."""
    _needs_avx2_below()
    native = run_levels(_options(["numpy"]), [NATIVE])
    capped = run_levels(_options(["numpy"]), ["avx2"])
    merged = merge_records([native, capped], ["job-native", "job-avx2"])
    rows = {r["backend"]: (r["status"], r.get("isa")) for r in merged["results"]}
    assert rows == {"numpy": ("passed", NATIVE), "numpy@avx2": ("passed", "avx2")}


def test_cli_refuses_a_level_above_this_machine_in_one_line(tmp_path: Path) -> None:
    here = hardware.cpu()["isa_class"]
    above = [level for level in LEVELS if isa_rank(level) > isa_rank(here)]
    if not above:
        pytest.skip(f"no level is above this CPU ({here})")
    out = subprocess.run(
        [sys.executable, "-m", "crosscheck", "run", "--isa", above[-1], "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ},
        check=False,
    )
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "a cap only lowers" in out.stderr
    assert not list(tmp_path.iterdir())  # nothing run, nothing written


def test_cli_runs_every_level_into_one_record(tmp_path: Path) -> None:
    _needs_avx2_below()
    out = subprocess.run(
        [sys.executable, "-m", "crosscheck", "run", "--isa", "native,avx2", "--backends", "numpy,scipy.correlate"]
        + ["--properties", "matches_reference", "--max-examples", "5", "--no-pairwise", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads((tmp_path / "crosscheck.json").read_text(encoding="utf-8"))
    assert {r["backend"] for r in record["results"]} == {"numpy", "scipy.correlate", "numpy@avx2"}
    assert record["environment"]["dispatch"]["numpy@avx2"]["isa_class"] == "avx2"  # OpenBLAS' Haswell core
    assert "native level only" in out.stdout and "numpy@avx2" in out.stdout
    assert (tmp_path / "crosscheck.html").read_text(encoding="utf-8").count("numpy@avx2") > 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--isa", "avx9"], "unknown level 'avx9'"),
        (["--isa", "native,", "--isa", ","], "no level given"),
        (["--isa", "avx2", "--no-isolation"], "drop --no-isolation"),
    ],
)
def test_bad_isa_options_are_one_line_and_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    if "avx2" in args and "avx2" not in machine_levels():
        pytest.skip("avx2 is this CPU's own level or above it")
    out = subprocess.run(
        [sys.executable, "-m", "crosscheck", "run", *args, "--backends", "numpy", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and needle in out.stderr
    assert not (tmp_path / "out").exists()  # refused before any work: nothing written
