"""Copy-pasteable code that rebuilds a failing problem and runs the failing check again."""

from __future__ import annotations

import json

from crosscheck.problem import ConvProblem


def problem_code(problem: ConvProblem) -> str:
    spec = json.dumps(problem.spec.to_dict())
    lines = [
        "from crosscheck import ConvSpec, make_problem",
        f"spec = ConvSpec.from_dict({spec})",
        f"problem = make_problem(spec, seed={problem.seed}, values={problem.values!r})",
    ]
    if problem.meta.get("asymmetric"):
        lines.insert(0, "from crosscheck.values import make_asymmetric")
        lines.append("problem = make_asymmetric(problem)")
    if problem.meta.get("flipped"):
        lines.append("problem = problem.flipped()")
    if "precision_mode" in problem.meta:
        # The precision mode an example of property precision_modes ran in.
        lines.insert(0, "import dataclasses")
        mode = {"precision_mode": problem.meta["precision_mode"]}
        lines.append(f"problem = dataclasses.replace(problem, meta={{**problem.meta, **{mode!r}}})")
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
