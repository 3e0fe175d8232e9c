"""Fused convolution + bias + activation: the call compiled paths really make (a conv layer's forward).

A backend that offers one call for act(conv(x, w) + b) (`Backend.fused`; its space `Capabilities.fused`, its
activations `Capabilities.activations`) is judged against the reference composed of the same operations
(`crosscheck.reference.fused`) with the bound of `crosscheck.core.bounds.fused_bound`: the convolution's bound
with the bias as one more term or as one more rounding, whichever the framework chose, through the activation's
Lipschitz constant plus its own rounding. The bias comes from the problem's seed (exact integers on exact-mode
inputs, where every partial sum stays representable, so the result must then match bit for bit).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import strategies as st

from crosscheck.backends.base import Backend, Capabilities
from crosscheck.checks import message
from crosscheck.checks.forward import Verdict
from crosscheck.core.bounds import ACTIVATIONS, fused_bound, gamma, probabilistic_scale
from crosscheck.core.dtypes import dtype_info
from crosscheck.core.problem import ConvProblem
from crosscheck.core.values import exact_value_limit
from crosscheck.properties.base import Observation, Property, PropertyFailure, call_backend
from crosscheck.reference import ReferenceResult, reference
from crosscheck.reference.fused import bias_shape, fused_reference
from crosscheck.strategies import conv_problems

ACTIVATION_KEY = "activation"  # where a failing problem names its activation (problem.meta), for the reproducer
FEATURE = "fused bias and activation"
NO_FUSED = "the backend declares no fused convolution + bias + activation call (Capabilities.fused is None)"
_BIAS_STREAM = 0xB1A5  # the bias' own random stream, derived from the problem's seed


def fused_bias(problem: ConvProblem) -> np.ndarray:
    """The bias of `problem` (C_out,), in its dtype: uniform in [-2, 2] like the inputs, or, on exact-mode inputs,
    integers as small as the inputs' (each partial sum then still fits the significand where M + |b| does)."""
    spec = problem.spec
    info = dtype_info(spec.dtype)
    rng = np.random.default_rng([problem.seed, _BIAS_STREAM])
    if problem.exact:
        limit = exact_value_limit(spec.dtype, spec.terms) or 1
        b = rng.integers(-limit, limit + 1, size=spec.out_channels).astype(np.float64)
    else:
        b = rng.uniform(-2.0, 2.0, size=spec.out_channels)
    return np.asarray(b.astype(info.numpy))


def fused_verdict(
    problem: ConvProblem,
    actual: object,
    bias: np.ndarray,
    activation: str,
    u_acc: float,
    conv: ReferenceResult | None = None,
) -> Verdict:
    """`actual` (canonical layout, the problem's dtype) against act(conv + b) and its bound; `conv` is the
    convolution's reference when the caller has it (one per problem, whatever the activations checked)."""
    spec = problem.spec
    info = dtype_info(spec.dtype)
    arr = np.asarray(actual)
    kind, text = message.mismatch("", arr, spec.y_shape, spec.dtype, info)
    if kind:
        return Verdict(False, kind, text)
    conv = conv if conv is not None else reference(problem)
    ref = fused_reference(conv, problem, bias, activation)
    b = np.broadcast_to(np.abs(np.asarray(bias, np.float64)).reshape(bias_shape(problem)), conv.value.shape)
    exact = problem.exact and float(np.max(conv.magnitude + b, initial=0.0)) <= 2.0**info.significand_bits
    if exact:
        bound = np.zeros(arr.shape)
    else:
        y = conv.approx + np.broadcast_to(np.asarray(bias, np.float64).reshape(bias_shape(problem)), conv.value.shape)
        bound = fused_bound(
            y,
            ref.approx,
            conv.approx,
            conv.magnitude,
            b,
            spec.terms,
            info.unit_roundoff,
            u_acc,
            info.smallest_normal,
            ACTIVATIONS[activation],
        )
        bound = np.asarray(bound + ref.error_bound, dtype=np.float64)
    judged = message.judge(arr, ref, bound, spec.dtype, info)
    worst = judged.worst
    scale = 0.0
    if judged.ratio.size and bound[worst] > 0:
        scale = float(probabilistic_scale(spec.terms + 1, u_acc) * (conv.magnitude[worst] + b[worst]) / bound[worst])
    passed = judged.mismatched == 0
    text = ""
    if not passed:
        line = ""
        if not exact:
            line = (
                f"  bound {bound[worst]:.6g}: max(bias as term K+1, bias after a rounding) through {activation} "
                f"(K={spec.terms}, γ_(K+1)={gamma(spec.terms + 1, u_acc):.3g}, M={conv.magnitude[worst]:.6g}, "
                f"|b|={b[worst]:.6g})"
            )
        text = message.values_message("", problem, arr, ref, judged, info, exact, line)
    return Verdict(passed, "values", text, judged.mismatched, arr.size, judged.max_ratio, judged.max_ulp, scale, exact)


class FusedBiasActivation(Property):
    name = "fused_bias_activation"
    title = "fused convolution + bias + activation matches the composed reference"
    description = (
        "act(conv(x, w) + b) computed in one call (a compiled or fused path: jax.jit, torch.compile, XLA, "
        "F.conv*d with bias then the activation) is within the composed bound of the exact act(Σx·w + b): the "
        "bias as one more term of the sum or as one more rounding, through the activation's Lipschitz "
        "constant plus its own rounding (relu, leaky_relu with slope 1/8, identity)."
    )
    # Each example runs every activation the backend offers: a quarter of the profile's examples.
    budget = 0.25

    def space(self, backend: Backend) -> Capabilities | None:
        return backend.capabilities().fused

    def applies(self, backend: Backend) -> str | None:
        if self.space(backend) is not None:
            return None
        return backend.capabilities().reason_for(FEATURE) or NO_FUSED

    def strategy(self, backend: Backend) -> st.SearchStrategy[ConvProblem]:
        sub = self.space(backend)
        assert sub is not None, "strategy() is only asked for when applies() is None"
        return conv_problems(sub)

    def _activations(self, backend: Backend, problem: ConvProblem) -> list[str]:
        named = problem.meta.get(ACTIVATION_KEY)
        sub = self.space(backend)
        offered = list(sub.activations) if sub is not None else []
        return [str(named)] if named else offered

    def check(self, backend: Backend, problem: ConvProblem) -> Observation:
        sub = self.space(backend)
        assert sub is not None
        bias = fused_bias(problem)
        u_acc = sub.u_acc(problem.spec.dtype)
        worst: Verdict | None = None
        names = self._activations(backend, problem)
        conv = reference(problem)
        for act in names:
            if act not in sub.activations:
                raise PropertyFailure(f"the backend offers no fused {act!r}", backend.name, self.name, problem)
            y = call_backend(backend, self.name, problem, lambda a=act: np.asarray(backend.fused(problem, bias, a)))  # type: ignore[misc]
            v = fused_verdict(problem, y, bias, act, u_acc, conv)
            if not v.passed:
                failing = replace(problem, meta={**problem.meta, ACTIVATION_KEY: act})
                raise PropertyFailure(
                    f"{act}(conv(x, w) + b) exceeds its composed bound:\n{v.message}", backend.name, self.name, failing
                )
            if worst is None or v.max_ratio > worst.max_ratio:
                worst = v
        assert worst is not None
        obs = self._observe(problem, worst)
        obs.features += [f"activation={a}" for a in names]
        return obs


FUSED: dict[str, Property] = {p.name: p for p in (FusedBiasActivation(),)}
