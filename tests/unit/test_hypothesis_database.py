"""The example database: each (backend, property) has its own key, a saved failure is replayed first,
and the `ci` profile stays repeatable while it keeps the database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import settings
from hypothesis.database import InMemoryExampleDatabase
from tests_support_broken import BrokenBackend

from crosscheck.backends import get_backend
from crosscheck.properties import PROPERTIES
from crosscheck.run.profiles import REPEATABLE, stable_seed
from crosscheck.run.runner import run_property


@pytest.fixture
def ci_db() -> Iterator[InMemoryExampleDatabase]:
    """The `ci` profile with a database of its own, restored afterwards."""
    original = settings.get_profile("ci")
    db = InMemoryExampleDatabase()
    settings.register_profile("ci", original, database=db)
    try:
        yield db
    finally:
        settings.register_profile("ci", original)


def _primary_keys(db: InMemoryExampleDatabase) -> set[bytes]:
    # Hypothesis files shrinking leftovers under "<key>.secondary" (and targets under "<key>.pareto");
    # the failures live under the key itself.
    return {k for k, v in db.data.items() if v and not k.endswith((b".secondary", b".pareto"))}


def test_each_backend_and_property_has_its_own_key(ci_db: InMemoryExampleDatabase) -> None:
    broken = BrokenBackend()
    for prop in ("matches_reference", "is_cross_correlation"):
        assert run_property(broken, PROPERTIES[prop], profile="ci", max_examples=20).status == "failed"
    assert len(_primary_keys(ci_db)) == 2


def test_a_saved_failure_is_replayed_first(ci_db: InMemoryExampleDatabase) -> None:
    prop = PROPERTIES["matches_reference"]
    first = run_property(BrokenBackend(), prop, profile="ci", max_examples=50)
    assert first.status == "failed" and _primary_keys(ci_db)
    assert first.caught_at is not None and first.caught_at > 1  # else "first" below would prove nothing
    again = run_property(BrokenBackend(), prop, profile="ci", max_examples=50)
    assert again.status == "failed"
    assert again.caught_at == 1, "the saved failure was not the first example tried"
    assert again.failures[0]["problem"] == first.failures[0]["problem"]


def test_the_ci_profile_draws_the_same_examples_every_run(ci_db: InMemoryExampleDatabase) -> None:
    assert "ci" in REPEATABLE
    numpy = get_backend("numpy")
    runs = [run_property(numpy, PROPERTIES["matches_reference"], profile="ci", max_examples=15) for _ in range(2)]
    a, b = (r.to_dict() for r in runs)
    assert a["status"] == b["status"] == "passed"
    assert a["features"] == b["features"] and a["by_dtype"] == b["by_dtype"]
    assert stable_seed("numpy/matches_reference") != stable_seed("numpy/is_cross_correlation")


def test_our_profiles_do_not_inherit_hypothesis_own_ci_profile() -> None:
    # Under CI, Hypothesis loads its built-in `ci` profile (derandomized, no database) as the default;
    # profiles registered without a parent used to inherit it, losing the database.
    code = (
        "import crosscheck.run.profiles\nfrom hypothesis import settings\n"
        "for n in ('dev', 'ci', 'thorough'):\n"
        "    s = settings.get_profile(n)\n"
        "    assert not s.derandomize and s.database is not None, (n, s)\n"
    )
    env = {**os.environ, "CI": "true"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
