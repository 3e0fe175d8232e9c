"""Copy-pasteable code that rebuilds a failing problem and runs the failing check again."""

from __future__ import annotations

import json

from crosscheck.core.problem import ConvProblem


def problem_code(problem: ConvProblem) -> str:
    spec = json.dumps(problem.spec.to_dict())
    lines = [
        "from crosscheck import ConvSpec, make_problem",
        f"spec = ConvSpec.from_dict({spec})",
        f"problem = make_problem(spec, seed={problem.seed}, values={problem.values!r})",
    ]
    if problem.meta.get("asymmetric"):
        lines.insert(0, "from crosscheck.core.values import make_asymmetric")
        lines.append("problem = make_asymmetric(problem)")
    if problem.meta.get("flipped"):
        lines.append("problem = problem.flipped()")
    # The precision mode an example of property precision_modes ran in; the activation of fused_bias_activation.
    named = {key: problem.meta[key] for key in ("precision_mode", "activation") if key in problem.meta}
    if named:
        lines.insert(0, "import dataclasses")
        lines.append(f"problem = dataclasses.replace(problem, meta={{**problem.meta, **{named!r}}})")
    return "\n".join(lines)


def standalone_problem_code(problem: ConvProblem, max_elements: int = 4096) -> str:
    """Code that defines `problem.x` and `problem.w` as literal arrays, importing only NumPy (and ml_dtypes for
    bfloat16), for a snippet that runs without crosscheck, ready for a framework's issue tracker. Larger problems
    than `max_elements` are rebuilt by crosscheck from their seed instead (`problem_code`)."""
    import numpy as np

    x, w = problem.x, problem.w
    if x.size + w.size > max_elements:
        return problem_code(problem)
    dtype = problem.spec.dtype
    wide = {"c": np.complex128, "i": np.int64}.get(np.dtype(x.dtype).kind, np.float64)

    def literal(name: str, a: np.ndarray) -> str:
        # Every value of these dtypes is exact in float64 (int64), and repr() round-trips it, -0.0 included.
        if wide is np.complex128:
            # (real, imag) pairs viewed as complex: a complex literal would lose the sign of a zero real part.
            part = "float32" if dtype == "complex64" else "float64"
            pairs = repr(np.stack([a.real, a.imag], axis=-1).astype(np.float64).tolist())
            return f"{name} = np.array({pairs}, dtype=np.{part}).view(np.{dtype})[..., 0]"
        values = repr(np.asarray(a).astype(wide).tolist())
        if dtype == "bfloat16":
            return f"{name} = np.array({values}, dtype=np.float32).astype(ml_dtypes.bfloat16)"
        return f"{name} = np.array({values}, dtype=np.{dtype})"

    lines = ["import numpy as np", "from types import SimpleNamespace"]
    if dtype == "bfloat16":
        lines.insert(1, "import ml_dtypes  # NumPy's bfloat16")
    lines += [
        literal("x", x),
        literal("w", w),
        "problem = SimpleNamespace(x=x, w=w)  # x: (N, C_in, *in), w: (C_out, C_in/groups, *kernel)",
    ]
    return "\n".join(lines)


def reproducer(backend: str, prop: str, problem: ConvProblem) -> str:
    return "\n".join(
        [
            problem_code(problem),
            "from crosscheck.backends import get_backend",
            "from crosscheck.properties import PROPERTIES",
            f"PROPERTIES[{prop!r}].check(get_backend({backend!r}), problem)  # raises PropertyFailure",
        ]
    )
