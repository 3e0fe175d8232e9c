"""The ISA each framework dispatches to: parsed, classed, measured from the frameworks, and lowered by caps.

The measurements are checked against what this CPU and the caps in effect imply, so the tests hold on any
x86-64 CPU; capped child processes exercise the lower branches on the same machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crosscheck.core import hardware
from crosscheck.core.hardware import ISA_CLASSES, capped, cpu_class, isa_rank, onednn_class
from crosscheck.run.environment import fingerprint

# What oneDNN's verbose mode prints for each level (its dispatcher documentation's descriptions).
VERBOSE = {
    "Intel SSE4.1": "sse41",
    "Intel AVX2": "avx2",
    "Intel AVX2 with Intel DL Boost": "avx2",
    "Intel AVX2 with Intel DL Boost with 8-bit integer, float16 and bfloat16 support": "avx2-vnni-2",
    "Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions": "avx512",
    "Intel AVX-512 with Intel DL Boost": "avx512",
    "Intel AVX-512 with Intel DL Boost and bfloat16 support": "avx512-bf16",
    "Intel AVX10.1/512 with float16 and Intel DL Boost and bfloat16": "avx512-fp16",
    "Intel AVX-512 with float16, Intel DL Boost and bfloat16 support and Intel AMX with bfloat16 and 8-bit integer "
    "support": "amx",
    "Intel AVX10.1/512 with float16, Intel DL Boost and bfloat16 support and Intel Advanced Matrix Extensions "
    "(Intel AMX) with 8-bit integer, bfloat16 and float16 support": "amx-fp16",
}


@pytest.mark.parametrize("text", sorted(VERBOSE))
def test_onednn_verbose_descriptions_are_classed(text: str) -> None:
    assert onednn_class(text) == VERBOSE[text]


@pytest.mark.parametrize(
    ("name", "isa_class"),
    [
        ("AVX2", "avx2"),
        ("avx512_core", "avx512"),
        ("AVX512_CORE_VNNI", "avx512"),
        ("AVX512_CORE_BF16", "avx512-bf16"),
        ("AVX512_CORE_FP16", "avx512-fp16"),
        ("AVX10_1_512", "avx512-fp16"),
        ("AVX512_CORE_AMX", "amx"),
        ("AVX10_1_512_AMX_FP16", "amx-fp16"),
    ],
)
def test_onednn_cap_names_are_classed(name: str, isa_class: str) -> None:
    assert onednn_class(name) == isa_class


def test_cpu_flags_give_the_highest_class_they_allow() -> None:
    avx512 = {"avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq"}
    assert cpu_class({"avx", "avx2"}) == "avx2"
    assert cpu_class(avx512) == "avx512"
    assert cpu_class(avx512 | {"avx512_bf16"}) == "avx512-bf16"
    assert cpu_class(avx512 | {"avx512_bf16", "avx512_fp16"}) == "avx512-fp16"
    assert cpu_class(avx512 | {"avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"}) == "amx"
    assert cpu_class(avx512 | {"amx_tile", "amx_bf16", "amx_fp16"}) == "amx-fp16"
    assert cpu_class(set()) == "sse41"


def test_caps_only_lower() -> None:
    assert capped("amx", "avx2") == "avx2"
    assert capped("avx2", "amx") == "avx2"
    assert capped("avx512-bf16", None) == "avx512-bf16"
    assert [isa_rank(c) for c in ISA_CLASSES] == sorted(isa_rank(c) for c in ISA_CLASSES)


def test_verbose_output_is_parsed() -> None:
    text = (
        "onednn_verbose,v1,info,cpu,isa:Intel AVX2\n"
        "onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx2,forward_training,src:f32,...\n"
        "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,...\n"
    )
    assert hardware.parse_onednn_verbose(text) == {"onednn_isa": "Intel AVX2", "onednn_implementations": ["jit:avx2"]}


def _expected(cap_variable: str) -> str:
    """The class a framework honouring `cap_variable` should dispatch to on this CPU under the caps in effect."""
    cap = os.environ.get(cap_variable)
    return capped(hardware.cpu()["isa_class"], onednn_class(cap) if cap else None)


def _in_child(code: str, **env: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=300, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_torch_reports_the_class_this_cpu_and_the_caps_imply() -> None:
    pytest.importorskip("torch")
    d = hardware.torch_dispatch()
    assert d["isa_class"] == _expected("ONEDNN_MAX_CPU_ISA"), d
    assert d["onednn_isa"] and onednn_class(str(d["onednn_isa"])) == d["isa_class"]


@pytest.mark.parametrize("cap", ["AVX2", "AVX512_CORE"])
def test_a_cap_lowers_what_torch_dispatches_to(cap: str) -> None:
    pytest.importorskip("torch")
    if isa_rank(hardware.cpu()["isa_class"]) < isa_rank(onednn_class(cap) or ""):
        pytest.skip(f"this CPU ({hardware.cpu()['isa_class']}) is below {cap}: a cap only lowers")
    code = "import json; from crosscheck.core import hardware; print(json.dumps(hardware.torch_dispatch()))"
    d = _in_child(code, ONEDNN_MAX_CPU_ISA=cap)
    assert d["isa_class"] == onednn_class(cap), d


def test_tensorflow_reports_the_class_this_cpu_and_the_caps_imply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorflow")
    from importlib.metadata import version

    from crosscheck.backends.tensorflow_backend import installed_distribution

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # measured afresh, then kept
    measure = hardware.tensorflow_dispatch.__wrapped__
    d = measure(version(installed_distribution()))
    assert d["isa_class"] == _expected("ONEDNN_MAX_CPU_ISA"), d
    assert str(d["source"]).startswith("measured")
    assert list((tmp_path / "crosscheck" / "dispatch").glob("tensorflow-*.json"))
    assert measure(version(installed_distribution())) == d  # the kept answer


def test_openblas_reports_its_core_and_a_coretype_lowers_it() -> None:
    d = hardware.openblas_dispatch()
    if "openblas_core" not in d:
        pytest.skip(f"NumPy here does not use OpenBLAS: {d['source']}")
    assert isa_rank(str(d["isa_class"])) <= isa_rank(hardware.cpu()["isa_class"])
    code = "import json; from crosscheck.core import hardware; print(json.dumps(hardware.openblas_dispatch()))"
    assert _in_child(code, OPENBLAS_CORETYPE="Haswell") == {
        "openblas_core": "Haswell",
        "isa_class": "avx2",
        "source": "measured: OpenBLAS' core type (threadpoolctl)",
    }


def test_xla_class_follows_its_max_isa_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=AVX2")
    assert hardware.xla_dispatch()["isa_class"] == capped(hardware.cpu()["isa_class"], "avx2")
    monkeypatch.delenv("XLA_FLAGS")
    assert hardware.xla_dispatch()["isa_class"] == hardware.cpu()["isa_class"]


def test_fingerprint_carries_the_cpu_caps_and_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    fp = fingerprint({}, {"numpy": {"isa_class": "avx2", "source": "-"}})
    assert fp["isa_caps"]["ONEDNN_MAX_CPU_ISA"] == "AVX2" and fp["env"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert fp["cpu_isa_class"] in ISA_CLASSES and fp["cpu_vendor"]
    assert set(fp["cpu_features"]) <= set(hardware.KERNEL_FLAGS)
    assert fp["dispatch"]["numpy"]["isa_class"] == "avx2"
    line = hardware.environment_line("numpy", "2.4", {"isa_class": "avx2", "openblas_core": "Haswell"})
    assert line.startswith("# seen with numpy 2.4, kernels avx2 (Haswell)") and "ONEDNN_MAX_CPU_ISA=AVX2" in line
