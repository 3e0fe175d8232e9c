"""Complex inputs: the CNN's correlation multiplies x by w itself, not by its conjugate.

Deep-learning frameworks compute y = Σ x·w for complex x and w; `numpy.correlate` and
`scipy.signal.correlate` (and `scipy.ndimage.correlate`) compute Σ x·conj(w), the correlation of
signal processing (docs/semantics.md). The adapters of the latter hand them conj(w); this property shows, on
kernels with non-zero imaginary parts, that every backend computes Σ x·w and not Σ x·conj(w).
"""

from __future__ import annotations

import numpy as np
from hypothesis import event
from hypothesis import strategies as st

from crosscheck.backends.base import Backend
from crosscheck.core.dtypes import COMPLEX_DTYPES
from crosscheck.core.problem import ConvProblem
from crosscheck.properties.base import Observation, Property, PropertyFailure, run_backend
from crosscheck.reference import reference
from crosscheck.strategies import conv_problems


def conjugation_visible(problem: ConvProblem) -> ConvProblem:
    """The problem with one kernel tap's imaginary part moved by one if no tap has any (exact-mode
    Gaussian integers stay Gaussian integers): a real kernel equals its conjugate."""
    if np.any(problem.w.imag != 0):
        return problem
    w = problem.w.copy()
    w.flat[0] += 1j
    return problem.with_weight(w, conjugation_visible=True)


class NoConjugation(Property):
    name = "no_conjugation"
    title = "complex: Σ x·w, not Σ x·conj(w)"
    description = (
        "On complex inputs whose kernel has non-zero imaginary parts, the backend equals Σ x·w (the CNN's "
        "correlation, as PyTorch, JAX and TensorFlow define it) and differs from Σ x·conj(w) (what "
        "numpy.correlate and scipy.signal.correlate compute), bit for bit on exact-mode Gaussian integers."
    )
    budget = 0.25  # every example is exact-mode and fully informative: fewer suffice

    def _dtypes(self, backend: Backend) -> list[str]:
        return [d for d in backend.capabilities().dtypes if d in COMPLEX_DTYPES]

    def applies(self, backend: Backend) -> str | None:
        if self._dtypes(backend):
            return None
        caps = backend.capabilities()
        reasons = [r for f, r in caps.unsupported if "complex" in f]
        return "no complex dtype" + (f": {reasons[0]}" if reasons else " is declared")

    def strategy(self, backend: Backend) -> st.SearchStrategy[ConvProblem]:
        caps = backend.capabilities()
        return conv_problems(caps, dtypes=self._dtypes(backend), values=("exact",)).map(conjugation_visible)

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        problem = conjugation_visible(problem)
        conjugated = problem.with_weight(np.conj(problem.w), conjugated=True)
        ref, ref_conj = reference(problem), reference(conjugated)
        informative = not np.array_equal(ref.approx, ref_conj.approx)
        if not informative:
            event("conjugating w is invisible on this input")
        y = run_backend(backend, self.name, problem)
        v = self._compare(backend, problem, y, ref)
        if not v.passed:
            matches_conj = informative and self._compare(backend, conjugated, y, ref_conj).passed
            headline = "the backend computes Σ x·conj(w)" if matches_conj else "the backend is not Σ x·w"
            raise PropertyFailure(f"{headline}:\n{v.message}", backend.name, self.name, problem)
        if informative and self._compare(backend, conjugated, y, ref_conj).passed:
            raise PropertyFailure(
                "the result also equals Σ x·conj(w): the conjugation went undetected", backend.name, self.name, problem
            )
        return self._observe(problem, v, informative)


COMPLEX: dict[str, Property] = {p.name: p for p in (NoConjugation(),)}
