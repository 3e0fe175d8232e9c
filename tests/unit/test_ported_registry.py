"""The "ported" group: backends on the paths ported models take are named, listed and run on request, and a
default run leaves them out (its 60 s budget). A stand-in (NumPy's adapter under another name) plays one."""

from __future__ import annotations

import pytest

from crosscheck.backends import registry
from crosscheck.cli.main import main
from crosscheck.core.errors import CrosscheckError
from crosscheck.run.session import wanted_backends

STAND_IN = "crosscheck.backends.numpy_backend:NumpyBackend"


@pytest.fixture
def ported(monkeypatch: pytest.MonkeyPatch) -> str:
    # The stand-in alone: the real ported backends are tested in their own files (tests/frameworks).
    monkeypatch.setattr(registry, "PORTED", {"numpy.ported": STAND_IN})
    return "numpy.ported"


def test_a_default_run_leaves_ported_backends_out(ported: str) -> None:
    assert ported not in registry.backend_names()
    assert ported not in wanted_backends(None)
    assert ported in registry.all_backend_names()


def test_ported_names_every_ported_backend_and_each_can_be_named(ported: str) -> None:
    assert registry.expand(["ported"]) == list(registry.PORTED)
    assert registry.expand([ported, "numpy"]) == [ported, "numpy"]
    assert registry.resolve(ported) == STAND_IN
    assert registry.get_backend(ported).capabilities().ranks  # it builds like a built-in


def test_an_unknown_name_lists_the_ported_group_and_backends(ported: str) -> None:
    with pytest.raises(CrosscheckError, match=r"unknown backend 'nope'.*numpy\.ported.*ported"):
        registry.expand(["nope"])


def test_backends_command_lists_a_ported_backend_and_how_to_run_it(
    ported: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stand-in alone: the real ported backends load frameworks (and in one process only one Keras backend can).
    monkeypatch.setattr(registry, "PORTED", {ported: STAND_IN})
    assert main(["backends", "--no-isolation"]) == 0
    out = capsys.readouterr().out
    assert out.count("--backends ported") == len(registry.PORTED)  # one block per ported backend, the stand-in too
