"""Test configuration: our Hypothesis profile is chosen explicitly (CI sets CI=true)."""

from __future__ import annotations

from hypothesis import settings

from crosscheck.profiles import default_profile

settings.load_profile(default_profile())
