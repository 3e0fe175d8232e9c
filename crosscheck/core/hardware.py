"""The instruction set each framework's kernels dispatch to: a dimension of every verdict.

Frameworks choose their convolution kernels at run time by the CPU's instruction set, and caps such
as `ONEDNN_MAX_CPU_ISA` lower that choice without changing what the CPU reports. So the ISA a
result belongs to is measured from the framework where it can tell (oneDNN's own report for torch
and TensorFlow, OpenBLAS' core type for NumPy and SciPy) and only derived from the CPU's flags where
it cannot (XLA, onnxruntime), which the record says.

An *ISA class* is a coarse name for a dispatch level, ordered as `ISA_CLASSES`; known findings are
keyed on (framework version, ISA class) (`crosscheck.run.findings`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ISA_CLASSES = ("sse41", "avx", "avx2", "avx2-vnni-2", "avx512", "avx512-bf16", "avx512-fp16", "amx", "amx-fp16")

# Environment variables that cap a framework's dispatch ISA (docs/semantics.md); recorded with every run.
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "XLA_FLAGS", "OPENBLAS_CORETYPE")

# /proc/cpuinfo flags that change which kernels the frameworks pick.
KERNEL_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512dq",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "amx_fp16",
)

# oneDNN's ISA names (ONEDNN_MAX_CPU_ISA values, lower case) -> class. AVX10.1/512 is oneDNN's newer
# name for the same levels (AVX512_CORE_FP16 = AVX10_1_512, AVX512_CORE_AMX = AVX10_1_512_AMX).
_ONEDNN_CLASSES = {
    "sse41": "sse41",
    "avx": "avx",
    "avx2": "avx2",
    "avx2_vnni": "avx2",
    "avx2_vnni_2": "avx2-vnni-2",
    "avx512_core": "avx512",
    "avx512_core_vnni": "avx512",
    "avx512_core_bf16": "avx512-bf16",
    "avx512_core_fp16": "avx512-fp16",
    "avx10_1_512": "avx512-fp16",
    "avx512_core_amx": "amx",
    "avx10_1_512_amx": "amx",
    "avx512_core_amx_fp16": "amx-fp16",
    "avx10_1_512_amx_fp16": "amx-fp16",
}

# OpenBLAS core types (what `openblas_get_corename` reports) -> class.
_OPENBLAS_CLASSES = {
    "sapphirerapids": "amx",
    "cooperlake": "avx512-bf16",
    "skylakex": "avx512",
    "haswell": "avx2",
    "zen": "avx2",
    "sandybridge": "avx",
}


def isa_rank(isa_class: str) -> int:
    """Position of a class in ISA_CLASSES (unknown classes rank below every known one)."""
    return ISA_CLASSES.index(isa_class) if isa_class in ISA_CLASSES else -1


def onednn_class(isa: str) -> str | None:
    """The class of a oneDNN ISA, given as its name (`avx512_core_bf16`, an ONEDNN_MAX_CPU_ISA value) or as
    the description its verbose mode prints (`Intel AVX-512 with Intel DL Boost and bfloat16 support`)."""
    name = isa.strip().lower()
    if name in _ONEDNN_CLASSES:
        return _ONEDNN_CLASSES[name]
    if "amx" in name:
        # "... Intel AMX with 8-bit integer, bfloat16 and float16 support": float16 after the AMX part.
        return "amx-fp16" if "float16" in name.split("amx", 1)[1].replace("bfloat16", "") else "amx"
    if "avx-512" in name or "avx10" in name:
        if re.search(r"(?<!b)float16", name):
            return "avx512-fp16"
        return "avx512-bf16" if "bfloat16" in name else "avx512"
    if "avx2" in name:
        return "avx2-vnni-2" if "float16" in name else "avx2"
    if "avx" in name:
        return "avx"
    if "sse4" in name:
        return "sse41"
    return None


@functools.cache
def cpu() -> dict[str, Any]:
    """What the CPU is and which kernel-relevant features it reports (not what a framework uses)."""
    model, vendor = "", ""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key == "vendor_id" and not vendor:
                    vendor = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {
        "vendor": vendor or platform.processor() or "unknown",
        "model": model or platform.machine(),
        "features": [f for f in KERNEL_FLAGS if f in flags],
        "isa_class": cpu_class(flags),
    }


def cpu_class(flags: set[str] | frozenset[str]) -> str:
    """The highest class the CPU's flags allow (what a framework without caps could dispatch to)."""
    if {"amx_tile", "amx_bf16"} <= flags:
        return "amx-fp16" if "amx_fp16" in flags else "amx"
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        if "avx512_fp16" in flags:
            return "avx512-fp16"
        return "avx512-bf16" if "avx512_bf16" in flags else "avx512"
    if "avx2" in flags:
        return "avx2"
    return "avx" if "avx" in flags else "sse41"


def caps_in_effect() -> dict[str, str]:
    """The ISA caps set in this process's environment."""
    return {k: os.environ[k] for k in ISA_CAPS if os.environ.get(k)}


def capped(native: str, cap: str | None) -> str:
    """`native` lowered to `cap`'s class (caps only lower, never raise)."""
    if cap is None or isa_rank(cap) < 0 or isa_rank(native) <= isa_rank(cap):
        return native
    return cap


# ------------------------------------------------------------------------------------ measurements


def parse_onednn_verbose(text: str) -> dict[str, Any]:
    """The ISA line and the implementations of oneDNN's verbose output (ONEDNN_VERBOSE=1)."""
    isa = next((m.group(1).strip() for m in re.finditer(r"info,cpu,isa:(.*)", text)), None)
    impls = sorted({m.group(1) for m in re.finditer(r"primitive,exec,cpu,convolution,([^,]+),", text)})
    return {"onednn_isa": isa, "onednn_implementations": impls}


@contextlib.contextmanager
def held_output(fd: int) -> Iterator[list[str]]:
    """Hold back what C code writes to file descriptor `fd` (1 or 2) inside, past Python's sys.stdout/stderr:
    the list it yields holds that text once the block has ended (also when it raised)."""
    stream = sys.stdout if fd == 1 else sys.stderr
    held: list[str] = []
    stream.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(fd)
        os.dup2(tmp.fileno(), fd)
        try:
            yield held
        finally:
            stream.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            held.append(tmp.read().decode("utf-8", "replace"))


@functools.cache
def libc() -> Any:
    """The C library this process runs (loaded once): C stdio is flushed through it before output is read, and the
    process helpers (crosscheck.backends.processes) make their prctl calls through it."""
    return ctypes.CDLL(None, use_errno=True)


class KeptOutput:
    """What C code writes to file descriptor `fd` from now on, for the rest of the process, kept in an unlinked
    file instead (a worker's oneDNN verbose lines, which must never reach the terminal): `take` reads it."""

    def __init__(self, fd: int = 1) -> None:
        import fcntl

        (sys.stdout if fd == 1 else sys.stderr).flush()
        keep, path = tempfile.mkstemp(prefix="crosscheck-output-")
        os.unlink(path)
        # Appending: a writer's offset cannot run past the end once `take` empties the file.
        fcntl.fcntl(keep, fcntl.F_SETFL, fcntl.fcntl(keep, fcntl.F_GETFL) | os.O_APPEND)
        os.dup2(keep, fd)
        self._fd, self._keep = fd, keep

    def take(self) -> str:
        """The text written since the last take (C's stdio buffers flushed first)."""
        (sys.stdout if self._fd == 1 else sys.stderr).flush()
        with contextlib.suppress(Exception):
            libc().fflush(None)
        data = os.pread(self._keep, os.fstat(self._keep).st_size, 0)
        os.ftruncate(self._keep, 0)
        return data.decode("utf-8", "replace")


@functools.cache
def torch_dispatch() -> dict[str, Any]:
    """torch's own vectorised kernels' level and the ISA its oneDNN reports, measured in this process."""
    import torch

    out: dict[str, Any] = {"aten_cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        # F.conv2d on a shape this small does not reach oneDNN: its own convolution does.
        with held_output(1) as verbose, torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):  # type: ignore[no-untyped-call]
            torch.mkldnn_convolution(torch.ones(1, 4, 5, 5), torch.ones(4, 4, 3, 3), None, [0, 0], [1, 1], [1, 1], 1)
        out.update(parse_onednn_verbose(verbose[0]))
    isa = out.get("onednn_isa")
    aten = str(out["aten_cpu_capability"]).lower()
    out["isa_class"] = (onednn_class(isa) if isa else None) or {"avx512": "avx512", "avx2": "avx2"}.get(aten, "sse41")
    out["source"] = "measured: oneDNN's verbose ISA report and torch.backends.cpu.get_cpu_capability()"
    return out


_TF_PROBE = "import tensorflow as tf\ntf.nn.conv2d(tf.ones((1, 5, 5, 4)), tf.ones((3, 3, 4, 4)), 1, 'VALID')\n"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "crosscheck" / "dispatch"


@functools.cache
def tensorflow_dispatch(version: str) -> dict[str, Any]:
    """The ISA TensorFlow's oneDNN reports here. TensorFlow has no call to switch oneDNN's verbose mode on
    once it is loaded, so a child process runs one convolution with ONEDNN_VERBOSE=1; the answer is kept
    on disk, keyed on everything it depends on (version, interpreter, CPU features, caps)."""
    key_parts = [version, sys.executable, cpu()["features"], caps_in_effect(), os.environ.get("TF_ENABLE_ONEDNN_OPTS")]
    key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:24]
    path = _cache_dir() / f"tensorflow-{key}.json"
    try:
        cached: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return cached
    except (OSError, ValueError):
        pass
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    error: str | None = None
    text = ""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _TF_PROBE], env=env, capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        error = f"{type(exc).__name__}: {exc}"
    else:
        text = proc.stdout
        if proc.returncode != 0:
            error = (proc.stderr.strip().splitlines() or ["exit code " + str(proc.returncode)])[-1]
    out = parse_onednn_verbose(text)
    isa = out.get("onednn_isa")
    if isa:
        out["isa_class"] = onednn_class(isa) or "unknown"
        out["source"] = "measured: oneDNN's verbose ISA report in a TensorFlow child process"
    else:
        # No oneDNN in this build (or it is switched off): TensorFlow's Eigen kernels follow the CPU.
        out["isa_class"] = cpu()["isa_class"]
        out["source"] = "derived from the CPU flags: TensorFlow's oneDNN printed no ISA" + (
            f" ({error})" if error else ""
        )
    if error is None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(out), encoding="utf-8")
            tmp.replace(path)
        except OSError:
            pass
    return out


@functools.cache
def openblas_dispatch() -> dict[str, Any]:
    """The core type NumPy's OpenBLAS runs (threadpoolctl asks the library itself)."""
    try:
        import numpy  # noqa: F401 - loads its BLAS, which threadpoolctl then finds
        from threadpoolctl import threadpool_info

        blas = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
    except ImportError:
        blas = []
    if not blas:
        return {"isa_class": cpu()["isa_class"], "source": "derived from the CPU flags: no OpenBLAS found"}
    core = str(blas[0].get("architecture") or "")
    return {
        "openblas_core": core,
        "isa_class": _OPENBLAS_CLASSES.get(core.lower(), cpu()["isa_class"]),
        "source": "measured: OpenBLAS' core type (threadpoolctl)",
    }


# XLA's --xla_cpu_max_isa values -> class (it has no AVX-512 FP16 level).
_XLA_CLASSES = {
    "sse4_2": "sse41",
    "avx": "avx",
    "avx2": "avx2",
    "avx512": "avx512",
    "avx512_vnni": "avx512",
    "avx512_bf16": "avx512-bf16",
    "amx": "amx",
    "amx_fp16": "amx-fp16",
}


def xla_dispatch() -> dict[str, Any]:
    """XLA compiles for the host CPU, capped by --xla_cpu_max_isa; JAX reports neither, so this is derived."""
    m = re.search(r"--xla_cpu_max_isa=(\w+)", os.environ.get("XLA_FLAGS", ""))
    cap = _XLA_CLASSES.get(m.group(1).lower()) if m else None
    return {
        "xla_cpu_max_isa": m.group(1) if m else None,
        "isa_class": capped(cpu()["isa_class"], cap),
        "source": "derived: the CPU flags capped by XLA_FLAGS=--xla_cpu_max_isa (JAX does not report its target)",
    }


def native_dispatch(what: str) -> dict[str, Any]:
    """For a library with no ISA switch and no report (onnxruntime's MLAS picks kernels by cpuid)."""
    return {"isa_class": cpu()["isa_class"], "source": f"derived from the CPU flags: {what}"}


def environment_line(framework: str, version: str, dispatch: dict[str, Any]) -> str:
    """One line for reproducer headers: the framework, the kernels' ISA class and what it was measured from,
    the CPU, and the caps in effect (a reproducer may fail on one CPU and pass on another)."""
    detail = dispatch.get("onednn_isa") or dispatch.get("openblas_core") or dispatch.get("xla_cpu_max_isa")
    # A worker's caps (crosscheck run --isa) are its own, recorded with its dispatch; else this process's.
    in_effect = dispatch["caps"] if isinstance(dispatch.get("caps"), dict) else caps_in_effect()
    caps = ", ".join(f"{k}={v}" for k, v in in_effect.items()) or "none"
    info = cpu()
    kernels = f"{dispatch.get('isa_class', 'unknown')}" + (f" ({detail})" if detail else "")
    return f"# seen with {framework} {version}, kernels {kernels}, CPU {info['model']} ({info['vendor']}), caps: {caps}"


# ------------------------------------------------------------------------------------ ISA levels

# The levels `crosscheck run --isa` can cap the frameworks to, lowest first; "native" is no cap at all.
LEVELS = ("avx2", "avx512", "avx512-bf16", "avx512-fp16", "amx", "amx-fp16")
NATIVE = "native"

# Each switch: the environment variable, and its value for each level (the highest value not above the level).
SWITCHES: dict[str, dict[str, str]] = {
    "ONEDNN_MAX_CPU_ISA": {
        "avx2": "AVX2",
        "avx512": "AVX512_CORE",
        "avx512-bf16": "AVX512_CORE_BF16",
        "avx512-fp16": "AVX512_CORE_FP16",
        "amx": "AVX512_CORE_AMX",
        "amx-fp16": "AVX512_CORE_AMX_FP16",
    },
    "ATEN_CPU_CAPABILITY": {level: "avx2" if level == "avx2" else "avx512" for level in LEVELS},
    "XLA_FLAGS": {
        level: f"--xla_cpu_max_isa={v}"
        for level, v in zip(LEVELS, ("AVX2", "AVX512", "AVX512_BF16", "AVX512_BF16", "AMX", "AMX_FP16"))
    },
    "OPENBLAS_CORETYPE": dict(
        zip(LEVELS, ("Haswell", "SkylakeX", "Cooperlake", "Cooperlake", "SapphireRapids", "SapphireRapids"))
    ),
}


def machine_levels() -> list[str]:
    """The levels this machine can run: its own (as "native") and every capped level below it."""
    top = isa_rank(cpu()["isa_class"])
    return [NATIVE, *(level for level in LEVELS if isa_rank(level) < top)]


def parse_levels(text: str) -> list[str]:
    """`native`, `all` (every level this machine runs) or a comma list of levels; one-line CrosscheckError
    for an unknown level or one above this machine (a cap only lowers what a framework dispatches to)."""
    from crosscheck.core.errors import CrosscheckError

    runnable = machine_levels()
    out: list[str] = []
    for word in (w.strip().lower() for w in text.split(",") if w.strip()):
        if word == "all":
            chosen = runnable
        elif word == NATIVE:
            chosen = [NATIVE]
        elif word not in LEVELS:
            raise CrosscheckError(f"unknown level {word!r}; levels: native, all, {', '.join(LEVELS)}")
        elif word == cpu()["isa_class"]:
            chosen = [NATIVE]  # this CPU's own level: no cap needed
        elif word not in runnable:
            raise CrosscheckError(
                f"{word} is above this CPU ({cpu()['model']}, {cpu()['isa_class']}): a cap only lowers; "
                f"this machine runs {', '.join(runnable)}"
            )
        else:
            chosen = [word]
        out += [level for level in chosen if level not in out]
    if not out:
        raise CrosscheckError("no level given")
    return out


def level_env(level: str, switches: tuple[str, ...]) -> dict[str, str]:
    """The environment that caps `switches` (variable names) to `level`; empty for native."""
    if level == NATIVE:
        return {}
    out = {}
    for var in switches:
        value = SWITCHES[var][level]
        if var == "XLA_FLAGS":  # keep the user's other XLA flags
            others = re.sub(r"--xla_cpu_max_isa=\w+", "", os.environ.get("XLA_FLAGS", "")).strip()
            value = f"{others} {value}".strip()
        out[var] = value
    return out


def expected_class(level: str, switches: tuple[str, ...]) -> str:
    """The class a backend capped by `switches` should report at `level`."""
    if "ONEDNN_MAX_CPU_ISA" in switches or not switches:
        return level
    if "XLA_FLAGS" in switches:
        return _XLA_CLASSES[SWITCHES["XLA_FLAGS"][level].split("=")[1].lower()]
    return _OPENBLAS_CLASSES[SWITCHES["OPENBLAS_CORETYPE"][level].lower()]
