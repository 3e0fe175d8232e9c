"""Crashes while the module loads (a native extension that aborts on import)."""

from __future__ import annotations

import os

os.abort()
