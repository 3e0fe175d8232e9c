"""Our Hypothesis profiles, registered explicitly (Hypothesis ≥ 6.116 has a built-in `ci` profile
that it loads when CI is set; ours replaces it so that `ci` means the same everywhere)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

PROFILES = ("dev", "ci", "thorough")

_COMMON = dict(
    deadline=None,  # framework calls vary in time (first-call compilation, imports); never a failure
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    report_multiple_bugs=False,
)

settings.register_profile("dev", max_examples=50, **_COMMON)  # type: ignore[arg-type]
settings.register_profile(
    "ci",
    max_examples=200,
    derandomize=True,
    database=None,
    print_blob=True,
    **_COMMON,  # type: ignore[arg-type]
)
settings.register_profile("thorough", max_examples=2000, **_COMMON)  # type: ignore[arg-type]

# Phases without `explain`: it re-runs failing examples many times, which is slow for framework calls.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)


def default_profile() -> str:
    """CROSSCHECK_PROFILE if set, else `ci` under CI, else `dev`."""
    name = os.environ.get("CROSSCHECK_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
    if name not in PROFILES:
        raise ValueError(f"CROSSCHECK_PROFILE: expected one of {', '.join(PROFILES)}, got {name!r}")
    return name


def profile_settings(name: str, max_examples: int | None = None) -> settings:
    base = settings.get_profile(name)
    if max_examples is None:
        return settings(base, phases=PHASES)
    return settings(base, phases=PHASES, max_examples=max_examples)
