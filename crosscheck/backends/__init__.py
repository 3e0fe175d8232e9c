"""Backend adapters: one small module per framework, registered by name in `registry`."""

from crosscheck.backends.base import Backend, BackendUnavailable, Capabilities
from crosscheck.backends.registry import backend_names, expand, get_backend

__all__ = ["Backend", "BackendUnavailable", "Capabilities", "backend_names", "expand", "get_backend"]
