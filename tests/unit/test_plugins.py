"""Third-party backends through the entry-point group `crosscheck.backends`.

Each test installs a real distribution: a package and its `*.dist-info` folder (METADATA and
entry_points.txt, what pip writes) in a temporary folder put on sys.path, which is where
importlib.metadata looks for installed distributions.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crosscheck.backends import registry
from crosscheck.backends.base import BackendUnavailable
from crosscheck.cli.main import main
from crosscheck.run.record import load

PLUGIN = '''
"""A third-party backend: tensordot over sliding windows."""
import numpy as np

from crosscheck.backends.base import Backend, Capabilities
from crosscheck.backends.numpy_backend import windows


class TensordotBackend(Backend):
    name = "tensordot"
    framework = "demo-plugin"
    description = "numpy.tensordot over sliding windows (a plugin)"

    def capabilities(self):
        return Capabilities(dtypes=("float64", "float32"), padding=("explicit", "VALID"), groups=False)

    def run(self, problem):
        rank = problem.spec.rank
        taps = list(range(2 + rank, 2 + 2 * rank))
        y = np.tensordot(windows(problem), problem.w, axes=([1, *taps], [1, *range(2, 2 + rank)]))
        return np.moveaxis(y, -1, 1)
'''


def install(root: Path, entry_points: str, version: str = "1.0") -> None:
    """Write the package and its dist-info into `root` (a site-packages of our own)."""
    pkg = root / "crosscheck_demo_plugin"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
    info = root / f"demo_plugin-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: demo-plugin\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points), encoding="utf-8")
    (info / "RECORD").write_text("", encoding="utf-8")


GOOD = """\
[crosscheck.backends]
tensordot = crosscheck_demo_plugin:TensordotBackend
missing = crosscheck_demo_plugin_not_there:Backend
numpy = crosscheck_demo_plugin:TensordotBackend
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    install(tmp_path, GOOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_an_installed_plugin_is_a_backend(site: Path) -> None:
    with pytest.warns(UserWarning, match="'numpy'.*ignored"):
        names = registry.backend_names()
    assert "tensordot" in names and names.count("numpy") == 1
    with pytest.warns(UserWarning):
        b = registry.get_backend("tensordot")
    assert b.framework == "demo-plugin" and b.version() == "1.0"


def test_a_broken_plugin_is_unavailable_not_fatal(site: Path) -> None:
    with pytest.warns(UserWarning), pytest.raises(BackendUnavailable, match=r"missing: plugin .* cannot be loaded"):
        registry.get_backend("missing")


def test_backends_command_lists_plugins(
    site: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ported backends measure their capabilities for seconds each while they load (tests/frameworks lists them).
    monkeypatch.setattr(registry, "PORTED", {})
    with pytest.warns(UserWarning):
        assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "tensordot" in out and "demo-plugin 1.0" in out
    assert "missing" in out and "not installed" in out


def test_run_checks_a_plugin_in_its_worker(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.warns(UserWarning):
        code = main(["run", "--backends", "tensordot", "--max-examples", "15", "--seed", "2", "--out", str(out)])
    assert code == 0
    record = load(out / "crosscheck.json")
    assert {r["backend"] for r in record["results"]} == {"tensordot"}
    assert record["backends"][0]["isolation"]["starts"] == 1


def test_the_command_line_sees_a_plugin_installed_on_its_path(site: Path) -> None:
    env_path = str(site)
    proc = subprocess.run(
        [sys.executable, "-c", "from crosscheck.backends.registry import backend_names; print(backend_names())"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert "'tensordot'" in proc.stdout
