"""Text that names something elsewhere must name something that exists: finding ids against
crosscheck/data/known_findings.json (both ways), and the documents comments cite against the repository."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

from crosscheck.backends import registry
from crosscheck.backends.accumulation import _RESULT_NAMES
from crosscheck.core.finding_regions import REGIONS

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "crosscheck").rglob("*.py"))
# "finding <id>" in a reason or a comment; ids are lower-case words joined by hyphens, a `*` names a family.
NAMED = re.compile(r"\bfindings? ((?:[a-z0-9*]+-)+[a-z0-9*]+)")
# The prefixes and dtypes `accumulation.narrow_sum_finding` builds ids from (torch's capability reasons).
NARROW_SUM_CALLERS = {"torch": ("float16", "bfloat16")}


def _findings() -> list[dict[str, object]]:
    data = json.loads((ROOT / "crosscheck" / "data" / "known_findings.json").read_text(encoding="utf-8"))
    return list(data["findings"])


def _ids_named_in_code() -> dict[str, set[str]]:
    named: dict[str, set[str]] = {}
    for path in SOURCES:
        for m in NAMED.finditer(path.read_text(encoding="utf-8")):
            named.setdefault(m.group(1), set()).add(str(path.relative_to(ROOT)))
    for finding_id in REGIONS:
        named.setdefault(finding_id, set()).add("crosscheck/core/finding_regions.py")
    for prefix, dtypes in NARROW_SUM_CALLERS.items():
        for dtype in dtypes:
            for result in _RESULT_NAMES.values():
                named.setdefault(f"{prefix}-{dtype}-{result}-sums-in-{dtype}", set()).add("narrow_sum_finding")
    return named


def test_the_id_pattern_reads_the_reasons_it_is_meant_for() -> None:
    assert NAMED.findall("finding tensorflow-conv3d-graph-swaps-hw-dilations: in a tf.function") == [
        "tensorflow-conv3d-graph-swaps-hw-dilations"
    ]
    assert NAMED.findall("(findings torch-float16-*-sums-in-float16)") == ["torch-float16-*-sums-in-float16"]
    assert NAMED.findall("a known finding judged inside its region") == []


def test_every_finding_id_named_in_code_is_a_known_finding() -> None:
    known = {str(f["id"]) for f in _findings()}
    unknown = {i: sorted(w) for i, w in _ids_named_in_code().items() if not fnmatch.filter(known, i)}
    assert not unknown, f"named in code, missing from known_findings.json: {unknown}"


def test_every_known_finding_is_named_by_its_adapter() -> None:
    """Each finding is either judged inside a region of its backend (finding_regions) or named in the
    adapter's own module (a capability reason or the comment where the adapter works around it)."""
    missing = []
    for f in _findings():
        finding_id, backend = str(f["id"]), str(f["backend"])
        assert backend in registry.builtins(), f"{finding_id}: unknown backend {backend!r}"  # default or ported
        module = registry.builtins()[backend].split(":")[0]
        adapter = (ROOT / Path(*module.split("."))).with_suffix(".py").read_text(encoding="utf-8")
        in_region = any(r.backend == backend for r in REGIONS.get(finding_id, ()))
        if not in_region and finding_id not in adapter:
            missing.append(finding_id)
    assert not missing, f"known findings that their adapter never names: {missing}"


def test_comments_cite_only_documents_the_repository_has() -> None:
    cited_design = []
    missing_docs = []
    for path in [*SOURCES, *sorted((ROOT / "tests").rglob("*.py")), *sorted((ROOT / "benchmarks").rglob("*.py"))]:
        text = path.read_text(encoding="utf-8")
        where = str(path.relative_to(ROOT))
        # A design document outside the repository (its "§3" cannot be looked up by a reader of the code).
        if re.search(r"\bDESIGN(\.md)? ?§", text):
            cited_design.append(where)
        for doc in re.findall(r"\bdocs/[\w./-]+\.md\b", text):
            if not (ROOT / doc).is_file():
                missing_docs.append(f"{where}: {doc}")
    assert not cited_design, f"cite docs/ or the module that holds the fact instead: {cited_design}"
    assert not missing_docs, missing_docs


def test_only_the_cli_parses_argv_or_prints() -> None:
    """The command line is one layer: no module outside crosscheck/cli reads sys.argv, builds an argparse parser or
    calls print() (reproducer snippets that *contain* print calls are strings, not calls)."""
    import ast

    package = Path(__file__).parents[2] / "crosscheck"
    offenders = []
    for path in sorted(package.rglob("*.py")):
        if path.is_relative_to(package / "cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = path.relative_to(package.parent).as_posix()
            if isinstance(node, ast.Attribute) and node.attr == "argv" and getattr(node.value, "id", "") == "sys":
                offenders.append(f"{name}:{node.lineno} sys.argv")
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "print":
                offenders.append(f"{name}:{node.lineno} print()")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if "argparse" in names:
                    offenders.append(f"{name}:{node.lineno} argparse")
    assert offenders == []
