"""Cannot be imported: raises while the module loads (a missing dependency, say)."""

from __future__ import annotations

raise RuntimeError("this convolution needs a GPU library that is not installed")
