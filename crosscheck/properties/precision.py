"""Precision modes: the default float32 convolution, and each reduced-precision mode the framework
offers here, judged by the bound of its own unit roundoffs.

A mode is declared by its adapter (`Backend.precision_modes`): how far it may round the inputs
(u_in), what it sums in, and what it rounds the result to. `crosscheck.core.bounds` turns that into the
bound (the input-rounding term (1 + 2u_in + u_in²)(1 + γ_K) − 1), and a mode that exceeds even its
own bound is a finding, never a reason to loosen it. Modes the framework offers only elsewhere
(TF32 on a GPU, say) are declared with the reason and appear in the record, never run.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from crosscheck.backends.base import Backend, PrecisionMode
from crosscheck.backends.isolated import WorkerDied
from crosscheck.checks.forward import Verdict, compare
from crosscheck.core.dtypes import dtype_info
from crosscheck.core.problem import ConvProblem
from crosscheck.properties.base import Observation, Property, PropertyFailure, run_backend
from crosscheck.reference import reference
from crosscheck.strategies import conv_problems

DEFAULT = "default"
MODE_KEY = "precision_mode"  # where a problem carries its mode (problem.meta), for the reproducer


def runnable_modes(backend: Backend) -> dict[str, PrecisionMode]:
    """The backend's modes that run here and apply to a dtype it supports."""
    dtypes = set(backend.capabilities().dtypes)
    return {m.name: m for m in backend.precision_modes() if m.unsupported is None and dtypes & set(m.dtypes)}


class PrecisionModes(Property):
    name = "precision_modes"
    title = "each precision mode meets the bound of its own precision"
    description = (
        "The default float32 convolution meets the float32 bound; each reduced-precision mode the framework "
        "offers on this device (PyTorch autocast, JAX precision / preferred_element_type, TensorFlow's oneDNN "
        "bfloat16 rewrite, ...) meets the bound for its own input rounding, accumulator and output rounding. "
        "Modes offered only elsewhere are listed with the reason in the backend's precision_modes."
    )
    # Every example runs each mode that applies to its dtype: a quarter of the profile's examples.
    budget = 0.25

    def applies(self, backend: Backend) -> str | None:
        if "float32" in backend.capabilities().dtypes or runnable_modes(backend):
            return None
        return "no float32 convolution and no reduced-precision mode"

    def _names(self, backend: Backend, dtype: str) -> list[str]:
        """The modes that apply to `dtype`: the default (float32 only) and the backend's own."""
        names = [DEFAULT] if dtype == "float32" else []
        return names + [n for n, m in runnable_modes(backend).items() if dtype in m.dtypes]

    def strategy(self, backend: Backend) -> st.SearchStrategy[ConvProblem]:
        caps = backend.capabilities()
        dtypes = [d for d in caps.dtypes if self._names(backend, d)]
        return conv_problems(caps, dtypes=dtypes)

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        # A problem that names its mode (a reproducer, a known finding) runs that one; others run every
        # mode for their dtype, so that each mode sees every example.
        named = problem.meta.get(MODE_KEY)
        modes = runnable_modes(backend)
        observations = []
        for name in [str(named)] if named else self._names(backend, problem.spec.dtype):
            mode = modes.get(name)
            if name != DEFAULT and mode is None:
                raise PropertyFailure(
                    f"no precision mode {name!r} runs on this backend", backend.name, self.name, problem
                )
            if mode is not None and not named and mode.refuses(problem.spec):
                continue
            if mode is None:
                v = self._compare(backend, problem, run_backend(backend, self.name, problem))
            else:
                v = self._compare_mode(backend, problem, mode, self._run_mode(backend, problem, name))
            if not v.passed:
                what = "the default mode" if mode is None else f"precision mode {name!r} ({_model(mode)})"
                failing = replace(problem, meta={**problem.meta, MODE_KEY: name})
                raise PropertyFailure(f"{what} exceeds its own bound:\n{v.message}", backend.name, self.name, failing)
            obs = self._observe(problem, v)
            obs.mode = name
            observations.append(obs)
        if not observations:  # every mode for this dtype refused the problem (never so for a named mode: a replay)
            assume(False)
        main = self._observe(problem, self._worst(observations))
        main.features += [f"mode={o.mode}" for o in observations]
        main.modes = observations
        return main

    @staticmethod
    def _worst(observations: list[Observation]) -> Verdict:
        """One verdict for the record's per-dtype statistics: the example's worst mode."""
        worst = max(observations, key=lambda o: o.max_ratio)
        exact = all(o.exact for o in observations)
        return Verdict(True, "values", "", 0, 0, worst.max_ratio, worst.max_ulp, worst.expected_ratio, exact)

    def _run_mode(self, backend: Backend, problem: ConvProblem, mode: str) -> np.ndarray:
        """backend.run_mode, with a framework error turned into a failure (as run_backend does)."""
        try:
            return np.asarray(backend.run_mode(problem, mode))
        except WorkerDied as exc:
            raise PropertyFailure(str(exc), backend.name, self.name, problem, kind=exc.kind) from exc
        except Exception as exc:
            # The first line, and the last where they differ (TensorFlow's graph errors end with the cause).
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [""]
            text = lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"
            message = f"precision mode {mode!r}: backend raised {type(exc).__name__}: {text}"
            where = problem.where()
            raise PropertyFailure(f"{message}\n{where}", backend.name, self.name, problem, kind="exception") from exc

    def _compare_mode(self, backend: Backend, problem: ConvProblem, mode: PrecisionMode, y: np.ndarray) -> Verdict:
        caps = backend.capabilities()
        dtype = problem.spec.dtype
        u_acc = dtype_info(mode.accumulator or caps.accumulator(dtype)).unit_roundoff
        return compare(
            problem,
            y,
            reference(problem),
            u_acc=u_acc,
            bound_kind=caps.bound,
            complex_method=caps.complex_method,
            u_in=mode.u_in,
            out_dtype=mode.output_dtype,
            rounded_to=mode.output_rounding or mode.output_dtype,
        )


def _model(mode: PrecisionMode) -> str:
    parts = [f"inputs to u_in=2^{np.log2(mode.u_in):.0f}" if mode.u_in else "inputs as given"]
    parts.append(f"sums in {mode.accumulator or 'the default accumulator'}")
    if mode.output_rounding or mode.output_dtype:
        parts.append(f"result rounded to {mode.output_rounding or mode.output_dtype}")
    return ", ".join(parts)


PRECISION: dict[str, Property] = {p.name: p for p in (PrecisionModes(),)}
