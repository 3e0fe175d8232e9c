"""Our Hypothesis profiles, registered explicitly (Hypothesis ≥ 6.116 has a built-in `ci` profile
that it loads when CI is set; ours replaces it so that `ci` means the same everywhere).

Every profile keeps Hypothesis' example database (`.hypothesis/examples` under the working folder, or
HYPOTHESIS_STORAGE_DIRECTORY): a failure found once is replayed first by the next run, on this machine or
on a CI job that restored the folder. `ci` is also repeatable: Hypothesis refuses derandomize=True
together with a database, so instead each test is seeded from its own name (`stable_seed`), which draws
the same examples on every run, just as derandomize would, while saved failures still come first.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, settings

PROFILES = ("dev", "ci", "thorough")
REPEATABLE = frozenset({"ci"})  # profiles that seed each test from its name
# How many distinct bugs a run reports per property (crosscheck.run.runner: a further search after each): enough to
# show that a backend is wrong in more than one way, few enough that a thoroughly broken backend does not cost a
# search per shape of its brokenness.
DISTINCT_BUGS = 3

_COMMON = dict(
    deadline=None,  # framework calls vary in time (first-call compilation, imports); never a failure
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    report_multiple_bugs=False,
)

# Parent "default", not the profile loaded now: under CI the loaded one is Hypothesis' own `ci`
# (derandomized, no database), and every profile registered without a parent would inherit that.
_DEFAULT = settings.get_profile("default")
settings.register_profile("dev", _DEFAULT, max_examples=50, **_COMMON)
settings.register_profile(
    "ci",
    _DEFAULT,
    max_examples=200,
    derandomize=False,
    print_blob=True,
    **_COMMON,
)
settings.register_profile("thorough", _DEFAULT, max_examples=2000, **_COMMON)

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


def stable_seed(key: str) -> int:
    """A seed that depends only on `key` (unlike hash(), which Python salts per process)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def prepare(
    test: Callable[[], None],
    inner: Callable[..., Any],
    conf: settings,
    *,
    profile: str,
    seed: int | None,
    key: str,
) -> Callable[[], None]:
    """`test` (the @given-wrapped `inner`) with `conf` applied, its own database key `key`, and its seed.

    Hypothesis derives a test's database key from the source of its function. crosscheck runs one
    `inner` for every backend and property, so without `key` they would all share one key and replay
    each other's examples. The attribute is the one Hypothesis' pytest plugin sets for parametrized
    tests; Hypothesis keeps it private on purpose (HypothesisWorks/hypothesis#2911), and
    tests/unit/test_hypothesis_database.py fails if it stops separating the keys.

    An explicit `seed` reproduces a run exactly, so nothing is replayed from the database then; a
    REPEATABLE profile seeds from `key` and keeps the database.
    """
    inner._hypothesis_internal_add_digest = key.encode()  # type: ignore[attr-defined]
    if seed is not None:
        conf = settings(conf, derandomize=False, database=None)
        test = hypothesis.seed(seed)(test)
    elif profile in REPEATABLE:
        # hypothesis.seed() also sets database=None on the test's settings; `conf`, applied after it,
        # replaces those settings and so keeps the database.
        test = hypothesis.seed(stable_seed(key))(test)
    return conf(test)
