"""Test configuration: our Hypothesis profile is chosen explicitly (CI sets CI=true)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import is_hypothesis_test, settings

from crosscheck.run.profiles import REPEATABLE, default_profile, stable_seed

# The shared helpers (tests/support) and the wrong implementations (tests/meta) are imported by name from
# every folder of the tree.
for _folder in ("support", "meta"):
    sys.path.insert(0, str(Path(__file__).parent / _folder))

PROFILE = default_profile()
settings.load_profile(PROFILE)

_OWN_SEED: set[int] = set()  # test functions that carry their own @seed: left alone


def _function(item: pytest.Item) -> Any:
    obj = getattr(item, "obj", None)
    return getattr(obj, "__func__", obj)  # a bound method takes no attributes; its function does


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the soak tests (tests/unit/test_soak.py; nox -s soak)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--soak"):
        # Minutes of repeated faults: only on demand, never in the default run.
        soak = [item for item in items if item.get_closest_marker("soak")]
        if soak:
            config.hook.pytest_deselected(items=soak)
            items[:] = [item for item in items if not item.get_closest_marker("soak")]
    for item in items:
        fn = _function(item)
        if is_hypothesis_test(fn) and getattr(fn, "_hypothesis_internal_use_seed", None) is not None:
            _OWN_SEED.add(id(fn))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    # The `ci` profile keeps the example database, which Hypothesis does not allow with derandomize;
    # seeding each test from its node id draws the same examples on every run and on every xdist
    # worker, as derandomize would. Per item, not per function: parametrized cases share a function.
    # The attribute is what hypothesis.seed() sets; seed() itself would also switch the database off.
    fn = _function(item)
    if PROFILE in REPEATABLE and is_hypothesis_test(fn) and id(fn) not in _OWN_SEED:
        fn._hypothesis_internal_use_seed = stable_seed(item.nodeid)
