"""crosscheck: property-based proof that every framework's convolution is the same cross-correlation.

Importing this package loads NumPy only; frameworks load when a backend is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from crosscheck.checks.forward import Verdict, compare
    from crosscheck.core.problem import ConvProblem, ConvSpec
    from crosscheck.core.values import make_problem

_LAZY = {
    "ConvSpec": "crosscheck.core.problem",
    "ConvProblem": "crosscheck.core.problem",
    "make_problem": "crosscheck.core.values",
    "compare": "crosscheck.checks.forward",
    "Verdict": "crosscheck.checks.forward",
}


def __getattr__(name: str) -> Any:
    # Lazy so that `import crosscheck` (and the CLI's start-up) stays fast.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'crosscheck' has no attribute {name!r}")


# The reference itself: `from crosscheck.reference import reference`.
__all__ = ["ConvProblem", "ConvSpec", "Verdict", "compare", "make_problem"]
