"""IsolatedBackend stands in for any Backend: every method and attribute of the interface is proxied to the
backend in its worker, so a method added to Backend without a proxy here fails this test, not a run."""

from __future__ import annotations

import inspect

import numpy as np
import wrong_backward as wb

from crosscheck.backends.base import Backend
from crosscheck.backends.isolated import IsolatedBackend
from crosscheck.core.problem import ConvProblem, ConvSpec
from crosscheck.core.values import make_problem

# Methods whose answer is the backend's own, asked of the worker with no argument.
NO_ARGUMENT = ("version", "precision_flags", "precision_modes", "implementations")
# What the proxy answers with more on purpose: describe() adds the worker's state (starts, deaths), dispatch()
# the ISA caps in effect in the worker.
OWN_ANSWER = ("describe", "check_available", "dispatch")


class Proxied(wb.NumpyBackward):
    """Forward, gradients, transposed convolution, a precision mode and non-default attributes."""

    name = "proxied"
    description = "every method answers"
    may_decline = True
    implementation_source = "its own name"
    converted_from = "its source"

    def run_mode(self, problem: ConvProblem, mode: str) -> np.ndarray:
        return np.asarray(self.run(problem) * 2)

    def implementations(self) -> list[str]:
        return ["the one"]

    def fused(self, problem: ConvProblem, bias: np.ndarray, activation: str) -> np.ndarray:
        y = self.run(problem) + bias.reshape(-1, *(1,) * problem.spec.rank)
        return np.asarray(np.maximum(y, 0) if activation == "relu" else y)

    def run_source(self, problem: ConvProblem) -> np.ndarray:
        return np.asarray(self.run(problem) * 3)


def _interface() -> tuple[set[str], set[str]]:
    methods = {n for n, v in vars(Backend).items() if inspect.isfunction(v) and not n.startswith("_")}
    attributes = {n for n in Backend.__annotations__ if not n.startswith("_")}
    return methods, attributes


def test_every_backend_method_has_its_own_proxy() -> None:
    methods, _ = _interface()
    assert {"run", "vjp", "conv_transpose", "capabilities", "run_mode", "reproducer"} <= methods
    inherited = sorted(n for n in methods if n not in vars(IsolatedBackend))
    assert not inherited, f"Backend methods IsolatedBackend inherits instead of asking its worker: {inherited}"


def test_the_proxy_answers_as_the_backend_in_its_worker() -> None:
    methods, attributes = _interface()
    direct = Proxied()
    problem = make_problem(ConvSpec(batch=1, in_channels=2, out_channels=2, in_size=(5, 4), kernel=(3, 2)), seed=3)
    g = np.ones(problem.spec.y_shape, problem.x.dtype)
    with IsolatedBackend(Proxied, "proxied") as iso:
        for name in sorted(attributes):
            assert getattr(iso, name) == getattr(direct, name), name
        for name in NO_ARGUMENT:
            assert getattr(iso, name)() == getattr(direct, name)(), name
        assert iso.capabilities().to_dict() == direct.capabilities().to_dict()
        np.testing.assert_array_equal(iso.run(problem), direct.run(problem))
        for got, want in zip(iso.vjp(problem, g), direct.vjp(problem, g), strict=True):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(iso.conv_transpose(problem, g), direct.conv_transpose(problem, g))
        np.testing.assert_array_equal(iso.run_mode(problem, "double"), direct.run_mode(problem, "double"))
        bias = np.arange(2, dtype=problem.x.dtype) - 1
        np.testing.assert_array_equal(iso.fused(problem, bias, "relu"), direct.fused(problem, bias, "relu"))
        np.testing.assert_array_equal(iso.run_source(problem), direct.run_source(problem))
        assert iso.native_snippet(problem) == direct.native_snippet(problem)
        assert iso.reproducer("matches_reference", problem) == direct.reproducer("matches_reference", problem)
        assert iso.dispatch().items() >= direct.dispatch().items()
        iso.check_available()
        assert iso.describe()["name"] == direct.describe()["name"]
    covered = {
        "capabilities",
        "run",
        "vjp",
        "conv_transpose",
        "native_snippet",
        "run_mode",
        "reproducer",
        "fused",
        "run_source",
    }
    untested = methods - covered - set(NO_ARGUMENT) - set(OWN_ANSWER)
    assert not untested, f"add the new Backend methods to this test: {sorted(untested)}"
