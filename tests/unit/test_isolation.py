"""crosscheck.backends.isolated: a backend in a worker process; crashes and hangs are reported, not suffered."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import pytest

from crosscheck.backends import registry
from crosscheck.backends.base import Backend, BackendUnavailable
from crosscheck.backends.isolated import IsolatedBackend, RemoteError, WorkerDied
from crosscheck.backends.registry import instantiate
from crosscheck.cli.main import main
from crosscheck.core.problem import ConvSpec
from crosscheck.core.values import make_problem
from crosscheck.run.record import load
from crosscheck.run.session import load_backend

HERE = Path(__file__).parents[1] / "support"
SUPPORT = "tests_support_isolation"


@pytest.fixture(autouse=True)
def _support_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker gets the parent's sys.path at start-up, so this reaches it too.
    monkeypatch.syspath_prepend(str(HERE))
    for name, cls in [
        ("crashing", "CrashingBackend"),
        ("hanging", "HangingBackend"),
        ("raising", "RaisingBackend"),
        ("crashes-on-load", "CrashesOnLoad"),
    ]:
        monkeypatch.setitem(registry.BUILTIN, name, f"{SUPPORT}:{cls}")


def isolated(name: str, timeout: float = 10.0) -> IsolatedBackend:
    return IsolatedBackend(functools.partial(instantiate, registry.BUILTIN[name], name), name, timeout=timeout)


def problem(rank: int = 2, groups: int = 1) -> object:
    spec = ConvSpec(2, 2 * groups, 2 * groups, (5,) * rank, (3,) * rank, padding=((1, 0),) * rank, groups=groups)
    return make_problem(spec, seed=1)


def test_isolated_backend_answers_like_the_backend_itself() -> None:
    p = problem()
    with isolated("numpy") as b:
        assert b.name == "numpy" and b.framework == "numpy"
        assert b.capabilities() == registry.get_backend("numpy").capabilities()
        np.testing.assert_array_equal(b.run(p), registry.get_backend("numpy").run(p))  # type: ignore[arg-type]
        assert b.describe()["isolation"]["starts"] == 1


def test_constraints_and_precision_modes_come_from_the_worker() -> None:
    # torch's capability constraints probe torch; the parent asks the worker rather than import it.
    pytest.importorskip("torch")
    with isolated("torch") as b:
        same_stride = ConvSpec(1, 1, 1, (6,), (3,), stride=(2,), padding="SAME")
        assert b.capabilities().refuses(same_stride)
        assert b.capabilities().refuses(same_stride.with_(stride=(1,))) is None
        in_process = registry.get_backend("torch")
        assert b.precision_modes() == in_process.precision_modes()
        runnable = [m for m in b.precision_modes() if m.unsupported is None]
        if runnable:
            p = make_problem(ConvSpec(1, 2, 2, (6, 6), (3, 3), dtype="float32"), seed=3)
            np.testing.assert_array_equal(b.run_mode(p, runnable[0].name), in_process.run_mode(p, runnable[0].name))


def test_every_backend_method_is_forwarded_or_answered_from_the_worker_s_description() -> None:
    # A method added to Backend must be decided for isolation too, or isolated runs would silently
    # answer with the base class's default.
    public = {n for n, v in vars(Backend).items() if callable(v) and not n.startswith("_")}
    assert public <= set(vars(IsolatedBackend)), sorted(public - set(vars(IsolatedBackend)))


def test_a_segfault_is_reported_with_where_it_happened_and_the_worker_restarts() -> None:
    with isolated("crashing") as b:
        with pytest.raises(WorkerDied) as info:
            b.run(problem(groups=2))  # type: ignore[arg-type]
        assert info.value.kind == "crash"
        assert "SIGSEGV" in str(info.value) and "tests_support_isolation.py" in str(info.value)
        assert b.run(problem()).shape == (2, 2, 4, 4)  # type: ignore[arg-type]
        assert b.starts == 2 and len(b.deaths) == 1


def test_a_hang_is_cut_at_the_timeout_and_says_where_it_was() -> None:
    with isolated("hanging", timeout=1.5) as b:
        t0 = time.perf_counter()
        with pytest.raises(WorkerDied) as info:
            b.run(problem(rank=3))  # type: ignore[arg-type]
        assert time.perf_counter() - t0 < 6
        assert info.value.kind == "hang"
        assert "1.5 s timeout" in str(info.value) and "in run" in str(info.value)


def test_exceptions_come_back_by_name() -> None:
    with isolated("raising") as b:
        with pytest.raises(NotImplementedError, match="no 2-D here"):
            b.run(problem(rank=2))  # type: ignore[arg-type]
        with pytest.raises(RemoteError) as info:
            b.run(problem(rank=1))  # type: ignore[arg-type]
        assert type(info.value).__name__ == "ValueError" and isinstance(info.value, ValueError)
        assert "bad" in str(info.value) and "second line" not in str(info.value)
        assert b.starts == 1  # an exception is not a death


def test_a_backend_that_crashes_while_loading_is_unavailable() -> None:
    with pytest.raises(BackendUnavailable, match=r"crashed.*while loading"):
        load_backend("crashes-on-load")


def test_closing_ends_the_worker() -> None:
    b = isolated("numpy")
    worker = b._worker
    assert worker is not None and worker.alive
    b.close()
    assert worker.proc.poll() is not None


def test_run_survives_a_crashing_backend_and_says_where_it_died(tmp_path: Path) -> None:
    code = main(
        ["run", "--backends", "crashing,numpy", "--properties", "matches_reference", "--max-examples", "40"]
        + ["--seed", "1", "--out", str(tmp_path)]
    )
    assert code == 1
    record = load(tmp_path / "crosscheck.json")
    by = {r["backend"]: r for r in record["results"]}
    assert by["numpy"]["status"] == "passed" and by["numpy"]["examples"] == 40 + by["numpy"]["sweep_examples"]
    crashed = by["crashing"]
    assert crashed["status"] == "failed" and crashed["reason"] == "crashed"
    (failure,) = crashed["failures"]
    assert failure["kind"] == "crash" and "SIGSEGV" in failure["message"]
    assert failure["problem"]["spec"]["groups"] > 1  # the example that crashed it
    entry = next(b for b in record["backends"] if b["name"] == "crashing")
    assert entry["isolation"]["crashes"] >= 1
    assert "crashed" in (tmp_path / "crosscheck.html").read_text(encoding="utf-8")


def test_run_survives_a_hanging_backend(tmp_path: Path) -> None:
    code = main(
        ["run", "--backends", "hanging", "--properties", "matches_reference", "--max-examples", "40"]
        + ["--seed", "1", "--timeout", "2", "--out", str(tmp_path)]
    )
    assert code == 1
    (result,) = load(tmp_path / "crosscheck.json")["results"]
    assert result["reason"] == "hung" and result["failures"][0]["kind"] == "hang"
    assert "not shrunk" in result["failures"][0]["message"]


def test_no_isolation_runs_in_process(tmp_path: Path) -> None:
    code = main(["run", "--backends", "numpy", "--max-examples", "5", "--no-isolation", "--out", str(tmp_path)])
    assert code == 0
    record = load(tmp_path / "crosscheck.json")
    assert record["run"]["isolation"]["enabled"] is False
    assert "isolation" not in record["backends"][0]
