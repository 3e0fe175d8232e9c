"""One nox session per framework; each installs only that framework (through the CI constraints),
runs its tests, and writes its JSON shard to reports/shards/<session>/crosscheck.json.

    nox -l              # list the sessions
    nox -t torch        # one framework (tags avoid the Python-version suffix in session names)
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"  # pip, not uv: uv ignores the local torch wheel and pulls CUDA
nox.options.reuse_existing_virtualenvs = True

CONSTRAINTS = "constraints/ci.txt"

# framework -> (extra to install, backends it provides, its own test file)
FRAMEWORKS: dict[str, tuple[str, str, str]] = {
    "numpy": ("", "numpy,scipy", "tests/test_backends.py"),
    "torch": ("torch", "torch", "tests/test_torch_backend.py"),
    "tensorflow": ("tensorflow", "tensorflow", "tests/test_tensorflow_backend.py"),
    "jax": ("jax", "jax", "tests/test_jax_backend.py"),
    "onnx": ("onnx", "onnx", "tests/test_onnx_backends.py"),
}


def _install(session: nox.Session, extra: str) -> None:
    extras = f"{extra},test" if extra else "test"
    session.install("-c", CONSTRAINTS, "-e", f".[{extras}]")


def _framework_session(framework: str) -> None:
    extra, backends, test_file = FRAMEWORKS[framework]

    def session(session: nox.Session) -> None:
        _install(session, extra)
        if framework == "numpy":
            session.run("pytest", "-q", "--ignore-glob=tests/test_*_backend*.py", env={"CROSSCHECK_PROFILE": "ci"})
        else:
            session.run("pytest", "-q", test_file, env={"CROSSCHECK_PROFILE": "ci"})
        out = f"reports/shards/{session.name}"
        session.run("crosscheck", "run", "--backends", backends, "--profile", "ci", "--out", out)

    session.__doc__ = f"{framework} alone: its tests, then its property-suite shard ({backends})"
    nox.session(name=framework, python=["3.11"], tags=[framework, "frameworks"])(session)


for _fw in FRAMEWORKS:
    _framework_session(_fw)


@nox.session(python=["3.11"], tags=["lint"])
def lint(session: nox.Session) -> None:
    """ruff and mypy over the package, tests and this file."""
    _install(session, "")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
