"""Properties of the backward pass: gradients, the transposed convolution, and their adjointness.

Each draws forward problems (x, w and the geometry) from the part of the space the backend declares
for that feature (`Capabilities.gradients` / `Capabilities.transposed`), derives the cotangent g from
the problem's seed (`crosscheck.core.adjoint.cotangent`), and judges the backend's result against the
reference of `crosscheck.reference.gradients` with that result's own error bound
(`crosscheck.checks.backward`). A problem, its seed and its value kind still reproduce an
example, so failures, reproducers and known findings work as for the forward properties.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from crosscheck.backends.base import Backend, Capabilities
from crosscheck.checks.backward import adjoint_verdict, compare_result
from crosscheck.checks.forward import Verdict
from crosscheck.core.adjoint import (
    cotangent,
    cotangent_limit,
    input_gradient_terms,
    output_padding,
    weight_gradient_terms,
)
from crosscheck.core.dtypes import dtype_info
from crosscheck.core.problem import ConvProblem
from crosscheck.core.values import VALUE_KINDS, make_problem
from crosscheck.properties.base import Observation, Property, PropertyFailure, call_backend, features, run_backend
from crosscheck.reference import reference
from crosscheck.reference.gradients import input_gradient, weight_gradient
from crosscheck.reference.transposed import conv_transpose
from crosscheck.strategies import conv_specs

# A vector-Jacobian product costs two convolutions: half the forward budget keeps examples as fast.
BACKWARD_MAX_MACS = 20_000

NO_GRADIENTS = "no autograd: the backend declares no vector-Jacobian product (Capabilities.gradients is None)"
NO_TRANSPOSED = "the backend declares no transposed convolution (Capabilities.transposed is None)"


@st.composite
def backward_problems(
    draw: st.DrawFn, caps: Capabilities, forward: Capabilities | None = None, transposed: bool = False
) -> ConvProblem:
    """A forward problem inside `caps` (and inside `forward` too, if given) whose backward pass can be
    checked: exact values only where the gradients' partial sums stay exact as well. `transposed`: realistic draws
    take the networks' transposed-convolution layers (crosscheck.strategies.realistic)."""
    spec = draw(conv_specs(caps, max_macs=BACKWARD_MAX_MACS, transposed=transposed))
    if forward is not None:
        assume(forward.refuses(spec) is None)
    exact_ok = cotangent_limit(spec) is not None
    if not dtype_info(spec.dtype).is_float:
        # Integers are always exact; a cotangent that cannot keep the sums exact is not drawn.
        assume(exact_ok)
    kind = draw(st.sampled_from([v for v in VALUE_KINDS if v != "exact" or exact_ok]))
    return make_problem(spec, draw(st.integers(0, 2**32 - 1)), kind)


def backward_features(problem: ConvProblem) -> list[str]:
    out = features(problem.spec, problem.values)
    if any(output_padding(problem.spec)):
        out.append("output_padding>0")
    return out


class BackwardProperty(Property):
    """A property of one backward feature: `attribute` names its Capabilities field."""

    attribute = ""
    feature = ""
    missing = ""
    # Fraction of the profile's max_examples this property runs (the runner scales by it).
    budget = 0.5

    def space(self, backend: Backend) -> Capabilities | None:
        sub: Capabilities | None = getattr(backend.capabilities(), self.attribute)
        return sub

    def applies(self, backend: Backend) -> str | None:
        if self.space(backend) is not None:
            return None
        return backend.capabilities().reason_for(self.feature) or self.missing

    def strategy(self, backend: Backend) -> st.SearchStrategy[ConvProblem]:
        sub = self.space(backend)
        assert sub is not None, "strategy() is only asked for when applies() is None"
        return backward_problems(sub, transposed=self.attribute == "transposed")

    def _u_acc(self, backend: Backend, problem: ConvProblem) -> float:
        sub = self.space(backend)
        assert sub is not None
        return sub.u_acc(problem.spec.dtype)

    def _fail(self, v: Verdict, backend: Backend, problem: ConvProblem, headline: str = "") -> None:
        if not v.passed:
            raise PropertyFailure(headline + v.message, backend.name, self.name, problem)

    def _observe_backward(self, problem: ConvProblem, v: Verdict) -> Observation:
        return Observation(
            problem.spec.dtype, v.max_ratio, v.max_ulp, v.expected_ratio, v.exact, backward_features(problem)
        )


class _Gradient(BackwardProperty):
    attribute = "gradients"
    feature = "gradients"
    missing = NO_GRADIENTS

    def vjp(self, backend: Backend, problem: ConvProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g = cotangent(problem)
        gx, gw = call_backend(backend, self.name, problem, lambda: backend.vjp(problem, g))
        return g, np.asarray(gx), np.asarray(gw)


class GradientInput(_Gradient):
    name = "gradient_input"
    title = "input gradient matches the reference"
    description = (
        "The vector-Jacobian product with respect to the input, grad_x = convᵀ(g, w) (the full correlation "
        "of the cotangent with the flipped kernel, cropped by the pads), is within its own error bound of "
        "the exact sum (K = C_out/groups times the taps reaching each input position)."
    )

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        g, gx, _ = self.vjp(backend, problem)
        ref = input_gradient(problem, g)
        terms = input_gradient_terms(problem.spec)
        v = compare_result("grad_x", problem, gx, ref, terms, self._u_acc(backend, problem), problem.exact)
        self._fail(v, backend, problem)
        return self._observe_backward(problem, v)


class GradientWeight(_Gradient):
    name = "gradient_weight"
    title = "weight gradient matches the reference"
    description = (
        "The vector-Jacobian product with respect to the weight, grad_w = x ⋆ g (the correlation of the "
        "input with the cotangent), is within its own error bound of the exact sum (K = the batch times "
        "the input elements each tap reads)."
    )

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        g, _, gw = self.vjp(backend, problem)
        ref = weight_gradient(problem, g)
        terms = weight_gradient_terms(problem.spec)
        v = compare_result("grad_w", problem, gw, ref, terms, self._u_acc(backend, problem), problem.exact)
        self._fail(v, backend, problem)
        return self._observe_backward(problem, v)


class _Transposed(BackwardProperty):
    attribute = "transposed"
    feature = "transposed convolution"
    missing = NO_TRANSPOSED

    def transposed(self, backend: Backend, problem: ConvProblem) -> tuple[np.ndarray, np.ndarray]:
        g = cotangent(problem)
        z = call_backend(backend, self.name, problem, lambda: backend.conv_transpose(problem, g))
        return g, np.asarray(z)


class TransposedMatchesReference(_Transposed):
    name = "transposed_matches_reference"
    title = "transposed convolution matches the reference"
    description = (
        "convᵀ(g, w), the transposed convolution with the forward geometry and every output_padding in "
        "[0, stride) (every output size whose forward convolution has g's size), is within its error "
        "bound of the exact sum of the products landing on each output position."
    )

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        g, z = self.transposed(backend, problem)
        ref = conv_transpose(problem, g)
        terms = input_gradient_terms(problem.spec)
        v = compare_result("convᵀ(g, w)", problem, z, ref, terms, self._u_acc(backend, problem), problem.exact)
        self._fail(v, backend, problem, f"output_padding {list(output_padding(problem.spec))}: ")
        return self._observe_backward(problem, v)


class AdjointIdentity(_Transposed):
    name = "adjoint_identity"
    title = "transposed convolution is the adjoint of the convolution"
    description = (
        "⟨conv(x, w), g⟩ = ⟨x, convᵀ(g, w)⟩ for the backend's own convolution and transposed convolution, "
        "within Σ|g|·B_conv + Σ|x|·B_convᵀ (bit for bit on exact-mode inputs)."
    )

    def strategy(self, backend: Backend) -> st.SearchStrategy[ConvProblem]:
        sub = self.space(backend)
        assert sub is not None
        return backward_problems(sub, forward=backend.capabilities(), transposed=True)

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        caps = backend.capabilities()
        y = run_backend(backend, self.name, problem)
        g, z = self.transposed(backend, problem)
        u_fwd, u_t = caps.u_acc(problem.spec.dtype), self._u_acc(backend, problem)
        y_ref, z_ref = reference(problem), conv_transpose(problem, g)
        terms = input_gradient_terms(problem.spec)
        v = adjoint_verdict(problem, g, y, y_ref, u_fwd, z, z_ref, terms, u_t, caps.bound)
        self._fail(v, backend, problem)
        return self._observe_backward(problem, v)


BACKWARD: dict[str, Property] = {
    p.name: p for p in (GradientInput(), GradientWeight(), TransposedMatchesReference(), AdjointIdentity())
}
