"""Backend names to adapter classes, imported only when asked for."""

from __future__ import annotations

import importlib

from crosscheck.backends.base import Backend
from crosscheck.errors import CrosscheckError

# name -> "module:Class"; the module is imported lazily so no framework loads at `import crosscheck`.
BUILTIN: dict[str, str] = {
    "numpy": "crosscheck.backends.numpy_backend:NumpyBackend",
    "scipy.correlate": "crosscheck.backends.scipy_backends:ScipyCorrelate",
    "scipy.convolve": "crosscheck.backends.scipy_backends:ScipyConvolveFlipped",
    "scipy.ndimage": "crosscheck.backends.scipy_backends:ScipyNdimage",
    "scipy.fft": "crosscheck.backends.scipy_backends:ScipyFFT",
    "torch": "crosscheck.backends.torch_backend:TorchBackend",
    "tensorflow": "crosscheck.backends.tensorflow_backend:TensorflowBackend",
    "jax": "crosscheck.backends.jax_backend:JaxBackend",
    "onnxruntime": "crosscheck.backends.onnx_backends:OnnxRuntimeBackend",
    "onnx.reference": "crosscheck.backends.onnx_backends:OnnxReferenceBackend",
}

# Short names a user may type for a family of backends.
ALIASES: dict[str, tuple[str, ...]] = {
    "scipy": ("scipy.correlate", "scipy.convolve", "scipy.ndimage", "scipy.fft"),
    "onnx": ("onnxruntime", "onnx.reference"),
}


def backend_names() -> list[str]:
    return list(BUILTIN)


def expand(names: list[str]) -> list[str]:
    """Resolve aliases and refuse unknown names (with the list of known ones)."""
    out: list[str] = []
    for name in names:
        for n in ALIASES.get(name, (name,)):
            if n not in BUILTIN:
                known = ", ".join(sorted(set(BUILTIN) | set(ALIASES)))
                raise CrosscheckError(f"unknown backend {name!r}; known backends: {known}")
            if n not in out:
                out.append(n)
    return out


def get_backend(name: str, device: str = "cpu") -> Backend:
    """An instance of backend `name` on `device`; raises BackendUnavailable if it cannot run here."""
    (target,) = expand([name])
    module_name, cls_name = BUILTIN[target].split(":")
    module = importlib.import_module(module_name)  # adapters import their framework lazily
    backend: Backend = getattr(module, cls_name)(device=device)
    backend.check_available()
    return backend
