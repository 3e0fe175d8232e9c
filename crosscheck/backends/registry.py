"""Backend names to adapter classes, imported only when asked for.

Built-in adapters are listed here; third-party ones register through the entry-point group
`crosscheck.backends` (name = "module:attribute", the attribute being a Backend subclass or any
callable taking `device=` and returning a Backend). Both are resolved to a "module:attribute"
string first, so that a worker process (crosscheck.backends.isolated) can build the same backend.
"""

from __future__ import annotations

import importlib
import warnings
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from crosscheck.backends.base import Backend, BackendUnavailable
from crosscheck.core.errors import CrosscheckError

ENTRY_POINT_GROUP = "crosscheck.backends"

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

# The paths ported models take (compiled, layer-level, converted): each is another implementation of the same
# convolution, but each example costs a compilation, a layer build or a conversion, so a default run (60 s
# budget) leaves them out; `--backends ported` (or a name) runs them and `crosscheck backends` lists them.
PORTED: dict[str, str] = {
    "tensorflow.xla": "crosscheck.backends.compiled_backends:TensorflowXlaBackend",
    "torch.compile": "crosscheck.backends.compiled_backends:TorchCompileBackend",
    "jax.jit": "crosscheck.backends.compiled_backends:JaxJitBackend",
    "keras.tensorflow": "crosscheck.backends.keras_backends:KerasTensorflow",
    "keras.jax": "crosscheck.backends.keras_backends:KerasJax",
    "keras.torch": "crosscheck.backends.keras_backends:KerasTorch",
    "torch.onnx": "crosscheck.backends.converted_backends:TorchOnnxBackend",
    "tf2onnx": "crosscheck.backends.converted_backends:Tf2OnnxBackend",
    "onnx2torch": "crosscheck.backends.converted_backends:Onnx2TorchBackend",
    "openvino": "crosscheck.backends.converted_backends:OpenvinoBackend",
}

# Short names a user may type for a family of backends.
ALIASES: dict[str, tuple[str, ...]] = {
    "scipy": ("scipy.correlate", "scipy.convolve", "scipy.ndimage", "scipy.fft"),
    "onnx": ("onnxruntime", "onnx.reference"),
}


def aliases() -> dict[str, tuple[str, ...]]:
    """ALIASES plus "ported" (read on every call: tests and plugins may change PORTED)."""
    return {**ALIASES, "ported": tuple(PORTED)}


def builtins() -> dict[str, str]:
    """Every built-in adapter by name, the default ones and the ported ones."""
    return {**BUILTIN, **PORTED}


def plugins() -> dict[str, EntryPoint]:
    """Installed third-party backends by name; a name taken by a built-in (or an alias) is skipped.

    Read from package metadata on every call (cheap, imports nothing), so that a plugin installed
    while a process runs, or put on sys.path by a test, is seen.
    """
    out: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in builtins() or ep.name in aliases():
            warnings.warn(
                f"crosscheck plugin {ep.name!r} ({ep.value}) is ignored: the name belongs to a built-in backend",
                stacklevel=2,
            )
            continue
        out.setdefault(ep.name, ep)  # the first on sys.path wins, as for imports
    return out


def backend_names() -> list[str]:
    """The backends a run takes by default: the built-in eager ones and the installed plugins."""
    return list(BUILTIN) + sorted(plugins())


def all_backend_names() -> list[str]:
    """Every backend a user can name: the default ones and the ported ones."""
    return list(BUILTIN) + list(PORTED) + sorted(plugins())


def expand(names: list[str]) -> list[str]:
    """Resolve aliases and refuse unknown names (with the list of known ones)."""
    known_plugins = plugins()
    known_builtins = builtins()
    known_aliases = aliases()
    out: list[str] = []
    for name in names:
        for n in known_aliases.get(name, (name,)):
            if n not in known_builtins and n not in known_plugins:
                known = ", ".join(sorted(set(known_builtins) | set(known_aliases) | set(known_plugins)))
                raise CrosscheckError(f"unknown backend {name!r}; known backends: {known}")
            if n not in out:
                out.append(n)
    return out


def resolve(name: str) -> str:
    """The "module:attribute" that builds backend `name` (a built-in, or a plugin's entry point)."""
    (target,) = expand([name])
    known_builtins = builtins()
    if target in known_builtins:
        return known_builtins[target]
    return plugins()[target].value


def instantiate(spec: str, name: str, device: str = "cpu") -> Backend:
    """Build backend `name` from its "module:attribute" `spec`; raises BackendUnavailable if it cannot run here.

    Module-level so that a worker process can be handed `partial(instantiate, spec, name, device)`.
    """
    module_name, _, attr = spec.partition(":")
    builtin = builtins().get(name) == spec
    try:
        module = importlib.import_module(module_name)  # adapters import their framework lazily
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part)
        backend = obj(device=device)
    except BackendUnavailable:
        raise
    except Exception as exc:
        if builtin:
            raise
        # A broken plugin is recorded as unavailable; it must not stop the other backends.
        raise BackendUnavailable(
            f"{name}: plugin {spec} cannot be loaded ({type(exc).__name__}: {exc})".splitlines()[0]
        ) from exc
    if not isinstance(backend, Backend):
        raise BackendUnavailable(f"{name}: plugin {spec} returned {type(backend).__name__}, not a crosscheck Backend")
    if not builtin and backend.name != name:
        backend.name = name  # the entry point's name is what users type and what the record shows
    backend.check_available()
    return backend


def get_backend(name: str, device: str = "cpu") -> Backend:
    """An instance of backend `name` on `device`; raises BackendUnavailable if it cannot run here."""
    (target,) = expand([name])
    return instantiate(resolve(target), target, device)
