"""`crosscheck explain`: the seed's worked example, its numbers, and the live check of backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crosscheck.backends import registry
from crosscheck.cli.explain import (
    DEPTH_W,
    DEPTH_X,
    check_backend,
    depth_output,
    explain,
    one_by_one_output,
)
from crosscheck.cli.main import main
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.reference import reference
from crosscheck.report.seed import seed_example


def test_the_seed_numbers() -> None:
    ex = seed_example()
    assert ex.c.tolist() == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    assert ex.corr2.tolist() == [[4, 4, 2], [2, 4, 4], [0, 3, 4]]
    assert ex.conv2.tolist() == [[2, 4, 4], [1, 4, 3], [3, 3, 1]]
    assert int(ex.a[0:3, 0:3].ravel() @ ex.b.ravel()) == 4


def test_depth_sum_and_1x1_match_the_reference() -> None:
    _, total = depth_output()
    spec = ConvSpec(1, 3, 1, (5, 5), (3, 3), dtype="float64")
    p = ConvProblem(spec, DEPTH_X[None].astype(np.float64), DEPTH_W[None].astype(np.float64))
    assert np.array_equal(reference(p).approx[0, 0], total)
    conv, matmul = one_by_one_output()
    assert np.array_equal(conv, matmul)


def test_explain_walks_through_every_step() -> None:
    text, agrees = explain(["numpy", "scipy.correlate"])
    assert agrees
    for needle in (
        "1. One output element is a sum of element-wise products",
        "= 1 + 0 + 1 + 0 + 1 + 0 + 0 + 0 + 1 = 4",
        "window @ filter            = 4",
        "4. Convolution versus correlation",
        "5. The sum also runs over the input depth",
        "6. A 1×1 convolution is a matrix product over channels",
        "equal on all 50 elements: True",
        "All 2 backends that ran compute the cross-correlation",
    ):
        assert needle in text, needle


def test_a_flipping_backend_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.BUILTIN, "broken", "tests_support_broken:BrokenBackend")
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "support"))
    check = check_backend("broken")
    assert check.computes == "convolution" and not check.agrees


def test_cli_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--backends", "numpy"]) == 0
    assert "cross-correlation" in capsys.readouterr().out


def test_cli_explain_unknown_backend_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--backends", "nonsense"]) == 2
    assert "unknown backend 'nonsense'" in capsys.readouterr().err
