"""The environment fingerprint: what produced a record, so results can be compared across machines."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from crosscheck.core.hardware import caps_in_effect, cpu

_PACKAGES = (
    "numpy",
    "scipy",
    "ml_dtypes",
    "hypothesis",
    "torch",
    "tensorflow",
    "tensorflow-cpu",
    "jax",
    "jaxlib",
    "onnx",
    "onnxruntime",
)
_ENV_VARS = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OMP_NUM_THREADS",
    "TF_ENABLE_ONEDNN_OPTS",
    "ONEDNN_MAX_CPU_ISA",
    "ATEN_CPU_CAPABILITY",
    "XLA_FLAGS",
    "JAX_ENABLE_X64",
    "JAX_DEFAULT_MATMUL_PRECISION",
    "CUDA_VISIBLE_DEVICES",
)


def _versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def fingerprint(
    precision_flags: dict[str, dict[str, Any]] | None = None, dispatch: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Versions, the CPU and its kernel-relevant features, the ISA caps in effect, selected environment
    variables, each backend's pinned precision flags and what each backend's kernels dispatch to."""
    info = cpu()
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": info["model"],
        "cpu_vendor": info["vendor"],
        "cpu_features": info["features"],
        "cpu_isa_class": info["isa_class"],
        "isa_caps": caps_in_effect(),
        "cpu_count": os.cpu_count(),
        "packages": _versions(),
        "env": {k: os.environ[k] for k in _ENV_VARS if k in os.environ},
        "ci": bool(os.environ.get("CI")),
        "precision_flags": precision_flags or {},
        "dispatch": dispatch or {},
    }
