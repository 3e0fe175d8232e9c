"""The reference transposed convolution: convᵀ(g, w), the adjoint of a problem's convolution.

    y[n, g·Cg + c, i] = Σ_{o in group g} Σ_{(m, u): m·stride + u·dilation − lo = i} g[n, o, m] · w[o, c, u]

for i in [0, in_size): every product of a cotangent element with a kernel tap lands on the input
position that tap read in the forward pass; products that land on the padding are dropped. This is
exactly the input gradient of the forward convolution, so it is computed by the same code (see
`crosscheck.reference.gradients`); its term count K per element and magnitude M are the same too.
The output size, and the `output_padding` frameworks need to reach it, follow from the forward
geometry (`crosscheck.core.adjoint.output_padding`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from crosscheck.core.problem import ConvProblem
from crosscheck.reference.gradients import input_gradient
from crosscheck.reference.result import ReferenceResult


def conv_transpose(problem: ConvProblem, g: np.ndarray) -> ReferenceResult:
    """convᵀ(g, w) for `problem`'s geometry and weight; g is (N, C_out, *out_size)."""
    return replace(input_gradient(problem, g), method="transposed")
