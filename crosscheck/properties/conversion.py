"""A conversion end to end: the layer before conversion and the converted model, each against the reference and
against each other.

A converted backend (crosscheck.backends.converted_backends; `Backend.converted_from` says from what) runs the same
layer twice: in the framework it was built in (`run_source`) and, converted, in the target (`run`). Each side must
be within its own bound of the exact value, and the two within the sum of the bounds (crosscheck.checks.relations),
bit for bit on exact-mode values. The message names the side that broke, so a converter that mistranslates the
padding or the weight layout is told apart from a source framework that was already wrong.

This is a property of one backend, not a pair in crosscheck.run.pairwise: the source side is the layer the
conversion started from (a torch module, a Keras layer, an ONNX graph with its weight as an initializer), which no
registered backend runs, and the pair is fixed by the conversion rather than drawn.
"""

from __future__ import annotations

from hypothesis import strategies as st

from crosscheck.backends.base import Backend
from crosscheck.checks.relations import RelationBroken, relate, side
from crosscheck.core.problem import ConvProblem
from crosscheck.properties.base import Observation, Property, PropertyFailure, call_backend, features, run_backend
from crosscheck.reference import reference
from crosscheck.strategies import conv_problems


class ConversionEndToEnd(Property):
    name = "conversion_end_to_end"
    title = "the converted model and its source both match, and agree"
    description = (
        "A converted backend's layer before conversion (e.g. the torch module) and after (e.g. the exported ONNX model "
        "in onnxruntime) are each within their bound of the exact sum, and within the sum of the two bounds of each "
        "other (bit for bit on exact-mode inputs)."
    )
    budget = 0.5  # two runs of a converted layer per example

    def applies(self, backend: Backend) -> str | None:
        if backend.converted_from:
            return None
        return "not a converted model: the backend runs its framework's convolution directly, with nothing to convert"

    def strategy(self, backend: Backend) -> st.SearchStrategy[ConvProblem]:
        return conv_problems(backend.capabilities())

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        source_y = call_backend(backend, self.name, problem, lambda: backend.run_source(problem))
        ref = reference(problem)  # one reference for both sides and their relation
        source = side(backend, problem, source_y, ref)
        v_source = self._compare(backend, problem, source_y, ref)
        if not v_source.passed:
            raise PropertyFailure(
                f"the layer before conversion ({backend.converted_from}) is not within its bound:\n{v_source.message}",
                backend.name,
                self.name,
                problem,
            )
        converted_y = run_backend(backend, self.name, problem)
        v_converted = self._compare(backend, problem, converted_y, ref)
        if not v_converted.passed:
            raise PropertyFailure(
                f"the converted model is not within its bound (its source, {backend.converted_from}, is):\n"
                + v_converted.message,
                backend.name,
                self.name,
                problem,
            )
        converted = side(backend, problem, converted_y, ref)
        try:
            relation = relate(source.y, converted.y, source.bound + converted.bound, "source layer against converted")
        except RelationBroken as exc:
            raise PropertyFailure(f"{exc}\n{problem.where()}", backend.name, self.name, problem) from None
        observed = self._observe(problem, v_converted)
        observed.max_ratio = max(v_source.max_ratio, v_converted.max_ratio, relation.max_ratio)
        observed.features = features(problem.spec, problem.values)
        return observed


CONVERSION: dict[str, Property] = {p.name: p for p in (ConversionEndToEnd(),)}
