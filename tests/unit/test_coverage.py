"""Feature-combination coverage (strategies.coverage): problems built for a row carry the row's features, a run
covers every buildable pair, and the guided search catches wrong results planted where free draws rarely go."""

from __future__ import annotations

import functools
import os
import platform
import random
from typing import Any

import numpy as np
import pytest

from crosscheck.backends.base import Capabilities
from crosscheck.backends.numpy_backend import NumpyBackend
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.properties import PROPERTIES
from crosscheck.run.session import RunOptions, run_backends
from crosscheck.strategies.coverage import FEATURES, Guide, RandomChooser, build, classify, domain


def test_classify_reads_the_size_relations_in_the_width_dimension() -> None:
    spec = ConvSpec(
        batch=2, in_channels=32, out_channels=4, in_size=(6, 3), kernel=(1, 3), dilation=(1, 2),
        padding=((0, 0), (2, 2)), groups=2,
    )  # fmt: skip
    labels = classify(spec)
    assert labels["groups"] == "grouped" and labels["channels"] == ">=16" and labels["block16"] == "yes"
    assert labels["window"] == "wider" and labels["width_parity"] == "odd" and labels["dilation"] == ">1"
    assert labels["out_width"] == "<=14" and labels["batch"] == ">1" and labels["padding"] == "explicit"
    depthwise = classify(spec.with_(in_channels=16, out_channels=16, groups=16))
    assert depthwise["groups"] == "depthwise" and depthwise["channels"] == "1" and depthwise["block16"] == "yes"


def test_a_built_problem_has_every_feature_its_row_asks_for() -> None:
    caps = Capabilities(layouts=("channels_first", "channels_last"))
    dom = domain(caps)
    rng = random.Random(0)
    built = 0
    for _ in range(300):
        row = {f: rng.choice(dom[f]) for f in rng.sample(FEATURES, 4)}
        spec = build(RandomChooser(rng), caps, row)
        if spec is not None:
            built += 1
            assert all(classify(spec)[f] == v for f, v in row.items()), (row, spec.describe())
    assert built > 60  # some rows ask for the impossible (a depthwise problem with 2-15 channels a group)


def test_impossible_combinations_are_not_counted() -> None:
    pairs = Guide("numpy", NumpyBackend().capabilities()).buildable()[2]
    assert (("padding", "VALID"), ("window", "wider")) not in pairs  # VALID cannot pad up to a wider window
    assert (("groups", "depthwise"), ("channels", "2-15")) not in pairs  # one channel a group, by definition
    assert (("groups", "grouped"), ("channels", ">=16")) in pairs


def test_the_plan_covers_every_pair_it_can() -> None:
    guide = Guide("numpy", NumpyBackend().capabilities())
    rows = guide.plan(guide.caps)
    for row in rows:
        spec = build(RandomChooser(random.Random(1)), guide.caps, {f: v for f, v in row.items() if f in FEATURES})
        if spec is not None:
            guide.observe(spec)
    assert len(rows) <= 40
    assert guide.to_dict()["pairs"]["ratio"] > 0.9


class Planted(NumpyBackend):
    """NumPy with a wrong result (its first output off by one) where `wrong` says."""

    def wrong(self, spec: ConvSpec) -> bool:
        raise NotImplementedError

    def run(self, problem: ConvProblem) -> np.ndarray:
        y = np.array(super().run(problem))
        if self.wrong(problem.spec) and y.size:
            y.flat[0] += 1
        return y


class RareCombination(Planted):
    """Wrong only for grouped 2-D problems more than 14 outputs wide (free draws stop 2-D outputs at 10)."""

    name = "rare-combination"

    def wrong(self, s: ConvSpec) -> bool:
        return s.rank == 2 and 1 < s.groups < s.in_channels and s.out_size[-1] > 14


class WideChannels(Planted):
    """Wrong only with 32 input channels or more, where oneDNN's kernels block channels (free draws stop at 16)."""

    name = "wide-channels"

    def wrong(self, s: ConvSpec) -> bool:
        return s.in_channels >= 32


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("backend", [RareCombination, WideChannels])
def test_a_default_run_catches_a_wrong_result_in_a_rare_region(backend: type[NumpyBackend], seed: int) -> None:
    record = run_backends([backend()], [], list(PROPERTIES), RunOptions(seed=seed, profile="dev", pairwise=False))
    failed = [r["property"] for r in record["results"] if r["status"] == "failed"]
    assert failed, f"{backend.name}: seed {seed} missed it in {sum(r['examples'] for r in record['results'])} examples"
    cov = record["coverage"][backend.name]
    assert cov["pairs"]["total"] > 500 and cov["triples"]["total"] > 5000


def test_a_guide_scores_an_implementation_higher_the_rarer_it_was() -> None:
    guide = Guide("x", Capabilities())
    assert guide.ran(["torch:Slow2d"]) == 1.0
    assert guide.ran(["torch:Slow2d"]) == 0.5
    assert guide.ran(["torch:Slow2d", "torch:Mkldnn"]) == pytest.approx(1 / 3 + 1)
    assert guide.to_dict()["implementations"]["counts"] == {"torch:Slow2d": 3, "torch:Mkldnn": 1}


def test_torch_names_the_implementation_each_call_ran() -> None:
    pytest.importorskip("torch")
    from crosscheck.backends.registry import get_backend
    from crosscheck.core.values import make_problem

    backend = get_backend("torch")
    backend.implementations()
    backend.run(make_problem(ConvSpec(1, 2, 3, (6, 6), (3, 3), dtype="float64"), seed=1))
    assert backend.implementations() == ["torch:Slow2d"]
    assert backend.implementations() == []  # each call's names are reported once
    backend.run(make_problem(ConvSpec(1, 2, 3, (9, 9), (3, 3), dilation=(2, 2), dtype="float64"), seed=1))
    assert backend.implementations() == ["torch:SlowDilated2d"]
    backend.run(make_problem(ConvSpec(1, 16, 16, (8, 8), (3, 3), dtype="bfloat16"), seed=1))
    names = backend.implementations()
    # bfloat16 goes to oneDNN where torch has it; oneDNN's verbose mode then names its own implementation.
    assert names[0] in ("torch:Mkldnn", "torch:Slow2d")
    if names[0] == "torch:Mkldnn":
        assert any(n.startswith("onednn:") for n in names[1:]), names


def _isolated_run(name: str, options: RunOptions) -> dict[str, Any]:
    """matches_reference on framework `name` in its worker process, as `crosscheck run` runs it."""
    pytest.importorskip(name)
    from crosscheck.run.session import load_backend

    backend = load_backend(name, isolation=True, timeout=120)
    try:
        return run_backends([backend], [], ["matches_reference"], options)
    finally:
        backend.close()  # type: ignore[attr-defined]


def test_a_run_records_the_implementations_a_backend_reached() -> None:
    record = _isolated_run("torch", RunOptions(max_examples=20, pairwise=False))
    impl = record["coverage"]["torch"]["implementations"]
    assert "_select_conv_backend" in impl["source"]
    examples = 20 + record["coverage"]["torch"]["sweep_examples"]  # the covering sweep runs before the 20
    assert sum(n for name, n in impl["counts"].items() if name.startswith("torch:")) == examples, impl


def test_tensorflow_names_its_onednn_implementations_in_a_run_worker(capfd: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tensorflow")
    from crosscheck.backends.tensorflow_backend import NOT_ONEDNN
    from crosscheck.core.values import make_problem
    from crosscheck.run.session import load_backend

    backend = load_backend("tensorflow", isolation=True, timeout=120)
    try:
        assert "ONEDNN_VERBOSE" in backend.implementation_source
        backend.implementations()
        backend.run(make_problem(ConvSpec(1, 2, 3, (6, 6), (3, 3), dtype="float64", layout="channels_last"), seed=1))
        assert backend.implementations() == [NOT_ONEDNN]  # float64 convolutions are Eigen's (docs/semantics.md)
        assert backend.implementations() == []  # each call's names are reported once
        backend.run(make_problem(ConvSpec(1, 16, 16, (8, 8), (3, 3), dtype="float32", layout="channels_last"), seed=1))
        names = backend.implementations()
        # float32 runs on oneDNN where TensorFlow turns it on (x86 Linux, unless TF_ENABLE_ONEDNN_OPTS=0).
        onednn = platform.machine() in ("x86_64", "AMD64") and os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0"
        assert len(names) == 1 and names[0].startswith("onednn:") if onednn else names == [NOT_ONEDNN], names
        record = run_backends([backend], [], ["matches_reference"], RunOptions(max_examples=12, pairwise=False))
    finally:
        backend.close()  # type: ignore[attr-defined]
    counts = record["coverage"]["tensorflow"]["implementations"]["counts"]
    assert counts and all(n.startswith("onednn:") or n == NOT_ONEDNN for n in counts), counts
    assert "onednn_verbose" not in "".join(capfd.readouterr())  # oneDNN's lines never reach the terminal


def test_shards_coverage_is_united_and_older_records_are_kept_apart() -> None:
    from crosscheck.strategies.coverage import union

    def entry(examples: int, pairs: list[str], triples: list[str], uncovered: list[str]) -> dict[str, object]:
        return {
            "examples": examples,
            "guided_draws": examples,
            "features": {"dtype": {"float32": examples}},
            "pairs": {"covered": len(pairs), "total": 3, "combinations": pairs, "uncovered": uncovered, "refused": {}},
            "triples": {"covered": len(triples), "total": 2, "combinations": triples},
            "implementations": {"source": "s", "counts": {"a": examples}},
        }

    a = entry(2, ["p1", "p2"], ["t1"], ["p3"])
    b = entry(3, ["p2", "p3"], ["t1"], ["p1"])
    united = union([a, b])
    assert united["pairs"]["covered"] == 3 and united["pairs"]["ratio"] == 1.0 and united["pairs"]["uncovered"] == []
    assert united["triples"]["covered"] == 1 and united["examples"] == 5
    assert united["features"] == {"dtype": {"float32": 5}} and united["implementations"]["counts"] == {"a": 5}
    older = [{k: v for k, v in e.items()} for e in (a, b)]
    for e in older:
        e["pairs"] = {k: v for k, v in e["pairs"].items() if k != "combinations"}  # type: ignore[attr-defined]
    kept = union(older)
    assert kept["partial"] and kept["examples"] == 3


def test_the_sweep_covers_every_pair_the_same_way_in_any_run() -> None:
    caps = NumpyBackend().capabilities()
    sweep = Guide("numpy", caps).sweep()
    # A guide that planned and observed other properties first sweeps the same problems: what a property draws may
    # not depend on the properties before it (a sharded run).
    busy = Guide("numpy", caps)
    busy.begin("named_padding", 50)
    busy.plan(caps)
    busy.observe(sweep[3].spec)
    again = busy.sweep()
    assert [(p.spec, p.seed, p.values) for p in again] == [(p.spec, p.seed, p.values) for p in sweep]
    assert all(np.array_equal(a.x, b.x) and np.array_equal(a.w, b.w) for a, b in zip(sweep, again))
    fresh = Guide("numpy", caps)
    for problem in sweep:
        fresh.observe(problem.spec)
    pairs = fresh.to_dict()["pairs"]
    assert pairs["covered"] == pairs["total"] > 500 and pairs["refused"] == {}, pairs["uncovered"]
    assert len(sweep) < 60 and max(p.spec.macs for p in sweep) <= 40_000  # small: most under 1,000 multiply-adds
    assert [p.spec for p in Guide("jax", caps).sweep()] != [p.spec for p in sweep]  # seeded by the backend's name


def _full_coverage(record: dict[str, object], name: str) -> dict[str, object]:
    cov = record["coverage"][name]  # type: ignore[index]
    pairs = cov["pairs"]
    assert pairs["covered"] == pairs["total"] and pairs["uncovered"] == [], (name, pairs["uncovered"])
    assert cov["sweep_examples"] > 10
    return cov  # type: ignore[no-any-return]


def test_a_default_run_covers_every_pair() -> None:
    record = run_backends([NumpyBackend()], [], list(PROPERTIES), RunOptions(seed=7, pairwise=False))
    cov = _full_coverage(record, "numpy")
    (matches,) = [r for r in record["results"] if r["property"] == "matches_reference"]
    swept = len(Guide("numpy", NumpyBackend().capabilities()).sweep())
    assert matches["sweep_examples"] == cov["sweep_examples"] == swept
    assert all(r["sweep_examples"] == 0 for r in record["results"] if r["property"] != "matches_reference")


def test_an_isolated_framework_run_covers_every_pair_it_does_not_refuse() -> None:
    record = _isolated_run("onnxruntime", RunOptions(seed=7, pairwise=False))
    refused = _full_coverage(record, "onnxruntime")["pairs"]["refused"]  # type: ignore[index]
    assert all("dilation" in pair and "SAME" in pair for pair in refused), refused  # auto_pad with dilation > 1


@functools.cache
def _sweep_problem(name: str) -> ConvProblem:
    return Guide(name, NumpyBackend().capabilities()).sweep()[5]


class OneSweepProblem(Planted):
    """Wrong on one problem of its sweep only: no random search meets it again, so the sweep's own example is
    reported, in full."""

    name = "one-sweep-problem"

    def wrong(self, s: ConvSpec) -> bool:
        return s == _sweep_problem(self.name).spec


class Grouped3d(Planted):
    """Wrong for grouped 3-D problems with a batch: the sweep meets it, the search shrinks it."""

    name = "grouped-3d"

    def wrong(self, s: ConvSpec) -> bool:
        return s.rank == 3 and s.groups > 1 and s.batch > 1


def test_a_sweep_failure_is_reported_shrunk_or_in_full() -> None:
    one = OneSweepProblem()
    record = run_backends([one], [], ["matches_reference"], RunOptions(seed=3, pairwise=False, distinct_bugs=1))
    (result,) = record["results"]
    problem = _sweep_problem(one.name)
    assert result["status"] == "failed" and result["caught_at"] == 6
    (failure,) = result["failures"]
    assert failure["problem"] == problem.to_dict() and "coverage-sweep example, not shrunk" in failure["message"]
    assert "one-sweep-problem" in failure["reproducer"]
    record = run_backends([Grouped3d()], [], ["matches_reference"], RunOptions(seed=3, pairwise=False, distinct_bugs=1))
    (result,) = record["results"]
    assert result["status"] == "failed" and result["caught_at"] <= result["sweep_examples"] + 1
    (failure,) = result["failures"]
    shrunk = failure["problem"]["spec"]
    assert "not shrunk" not in failure["message"] and shrunk["batch"] == 2 and shrunk["groups"] == 2, shrunk
