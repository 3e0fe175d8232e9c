"""One nox session per framework and Python version; each installs only that framework (through the CI
constraints), runs its tests, and writes its JSON shard to reports/shards/<session>/crosscheck.json. The
`report` session merges the shards into reports/index.html. The CI matrix (.github/workflows/crosscheck.yml)
runs one job per framework session.

    nox -l                      # list the sessions
    nox -t torch                # one framework, every Python (tags avoid the version suffix)
    nox -s numpy-3.12           # one session
    nox -s numpy-3.11 -- --shard 1/2   # arguments after -- go to `crosscheck run`
    nox -s report               # merge whatever shards are in reports/shards/
    nox -t isa                  # the frameworks capped to each ISA level of ISA_LEVELS (crosscheck run --isa)
"""

from __future__ import annotations

import glob
import os

import nox

nox.options.default_venv_backend = "venv"  # pip, not uv: uv ignores the local torch wheel and pulls CUDA
nox.options.reuse_existing_virtualenvs = True

CONSTRAINTS = "constraints/ci.txt"
TORCH = "torch==2.13.0"  # the pin of constraints/ci.txt, installed first from TORCH_INDEX when one is set
# CI sets https://download.pytorch.org/whl/cpu: PyPI's Linux wheels of torch are CUDA builds of several GB.
TORCH_INDEX = os.environ.get("CROSSCHECK_TORCH_INDEX")
# Without TORCH_INDEX, plain pip finds a CPU build of TORCH only on the project's machines, and only for
# these Pythons (a wheel on disk); elsewhere it would download the CUDA build, so those sessions skip.
LOCAL_TORCH_PYTHONS = ("3.11",)

# framework -> (extra to install, backends it provides, its own test file, Pythons with wheels of its pin).
# Wheels checked with `pip index versions NAME --python-version 3.X --only-binary=:all:` (manylinux x86_64):
# jaxlib 0.10.2 and onnxruntime 1.32 have none for 3.10; numpy/scipy, torch 2.13.0 and tensorflow-cpu 2.21 do.
ALL_PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
FRAMEWORKS: dict[str, tuple[str, str, str, list[str]]] = {
    "numpy": ("", "numpy,scipy", "tests/frameworks/test_backends.py", ALL_PYTHONS),
    "torch": ("torch", "torch", "tests/frameworks/test_torch_backend.py", ALL_PYTHONS),
    "tensorflow": ("tensorflow", "tensorflow", "tests/frameworks/test_tensorflow_backend.py", ALL_PYTHONS),
    "jax": ("jax", "jax", "tests/frameworks/test_jax_backend.py", ["3.11", "3.12", "3.13"]),
    "onnx": ("onnx", "onnx", "tests/frameworks/test_onnx_backends.py", ["3.11", "3.12", "3.13"]),
    # Compiled paths (registry.PORTED): a session each, sharing one test file (tests skip without their framework).
    "tensorflow-xla": ("tensorflow", "tensorflow.xla", "tests/frameworks/test_compiled_backends.py", ALL_PYTHONS),
    "torch-compile": ("torch", "torch.compile", "tests/frameworks/test_compiled_backends.py", ALL_PYTHONS),
    "jax-jit": ("jax", "jax.jit", "tests/frameworks/test_compiled_backends.py", ["3.11", "3.12", "3.13"]),
    # Keras layers, a session per Keras backend (the `ported` group: not in a default run). Each installs all three
    # frameworks: the test file's in-process backend is keras.torch, its worker tests load the others, and
    # `import tensorflow` imports Keras itself; jax has no 3.10 wheels.
    **{
        f"keras-{below}": (
            "keras,tensorflow,jax,torch",
            f"keras.{below}",
            "tests/frameworks/test_keras_backends.py",
            ["3.11", "3.12", "3.13"],
        )
        for below in ("tensorflow", "jax", "torch")
    },
    # Converted models (ported backends): each session installs both sides of its conversion; Python 3.11 only
    # (the frameworks' own sessions cover the other Pythons). Their runs are short (--max-examples, CONVERTED_RUN):
    # every new geometry costs a conversion (a dynamo export about a second).
    "torch.onnx": ("torch,onnx,converters", "torch.onnx", "tests/frameworks/test_converted_backends.py", ["3.11"]),
    "tf2onnx": ("tensorflow,onnx,converters", "tf2onnx", "tests/frameworks/test_converted_backends.py", ["3.11"]),
    "onnx2torch": ("torch,onnx", "onnx2torch", "tests/frameworks/test_converted_backends.py", ["3.11"]),
    "openvino": ("onnx,converters", "openvino", "tests/frameworks/test_converted_backends.py", ["3.11"]),
}
# Installed after the extras with --no-deps: onnx2torch requires torchvision, and PyPI's torchvision is a CUDA build
# that fails to import beside torch's CPU build ("operator torchvision::nms does not exist"); Conv needs none of it.
NO_DEPS = {"onnx2torch": ["onnx2torch"]}
CONVERTED_RUN = ["--max-examples", "20"]


# Extra `crosscheck run` arguments per framework session: a Keras example builds a layer (and on JAX compiles it),
# 2-8 examples/s, so the profile's 200 per property would take the job ~40 minutes; 50 keep it near 10.
KERAS_RUN = ["--max-examples", "50"]
RUN_ARGS: dict[str, list[str]] = {f"keras-{below}": KERAS_RUN for below in ("tensorflow", "jax", "torch")}


def _install(session: nox.Session, extra: str) -> None:
    extras = f"{extra},test" if extra else "test"
    session.install("-c", CONSTRAINTS, "-e", f".[{extras}]")


def _install_torch(session: nox.Session) -> None:
    if TORCH_INDEX:
        session.install("--index-url", TORCH_INDEX, TORCH)
    elif session.python not in LOCAL_TORCH_PYTHONS:
        session.skip(
            f"set CROSSCHECK_TORCH_INDEX=https://download.pytorch.org/whl/cpu for torch on Python {session.python}: "
            "without it pip would download PyPI's multi-GB CUDA build"
        )


def _shard_folder(session: nox.Session) -> str:
    args = list(session.posargs)
    suffix = ""
    if "--shard" in args and args.index("--shard") + 1 < len(args):
        index, _, count = args[args.index("--shard") + 1].partition("/")
        suffix = f"-shard{index}of{count}"
    return f"reports/shards/{session.name}{suffix}"


def _framework_session(framework: str) -> None:
    extra, backends, test_file, pythons = FRAMEWORKS[framework]

    def session(session: nox.Session) -> None:
        if "torch" in extra.split(","):
            _install_torch(session)
        _install(session, extra)
        if framework in NO_DEPS:
            session.install("--no-deps", "-c", CONSTRAINTS, *NO_DEPS[framework])
        # CI's profile unless the caller picks another (CROSSCHECK_PROFILE=dev nox ... for a quick local pass).
        profile = os.environ.get("CROSSCHECK_PROFILE") or "ci"
        env = {"CROSSCHECK_PROFILE": profile}
        # -n auto: one pytest worker per core (pytest-xdist); the results are the same as a serial run.
        if framework == "numpy":
            session.run("pytest", "-q", "-n", "auto", "--ignore-glob=tests/frameworks/test_*_backend*.py", env=env)
        else:
            session.run("pytest", "-q", "-n", "auto", test_file, env=env)
        out = _shard_folder(session)
        short = CONVERTED_RUN if test_file.endswith("test_converted_backends.py") else []
        run_args = [*RUN_ARGS.get(framework, []), *short, *session.posargs]
        session.run("crosscheck", "run", "--backends", backends, "--profile", profile, "--out", out, *run_args)

    session.__doc__ = f"{framework} alone: its tests, then its property-suite shard ({backends})"
    nox.session(name=framework, python=pythons, tags=[framework, "frameworks"])(session)


for _fw in FRAMEWORKS:
    _framework_session(_fw)


# ISA levels CI checks besides each runner's native one (a cap only lowers: GitHub's x86-64 runners have AVX-512).
ISA_LEVELS = ["avx2", "avx512"]
ISA_BACKENDS = "torch,tensorflow,jax,numpy,onnx.reference"  # the backends with an ISA switch


@nox.session(python=["3.11"], tags=["isa"])
@nox.parametrize("level", ISA_LEVELS)
def isa(session: nox.Session, level: str) -> None:
    """Every framework with an ISA switch, capped to one level (crosscheck run --isa): the kernels of older CPUs."""
    _install_torch(session)
    _install(session, "all")
    profile = os.environ.get("CROSSCHECK_PROFILE") or "ci"
    out = f"reports/shards/isa-{level}"
    session.run("crosscheck", "run", "--isa", level, "--backends", ISA_BACKENDS, "--profile", profile, "--out", out)


@nox.session(python="3.11", tags=["report"])
def report(session: nox.Session) -> None:
    """Merge every shard under reports/shards/ into reports/index.html (and reports/merged.json)."""
    shards = sorted(glob.glob("reports/shards/*/crosscheck.json"))
    if not shards:
        session.error("no shards under reports/shards/*/crosscheck.json: run the framework sessions first")
    session.install("-c", CONSTRAINTS, "-e", ".")
    session.run("crosscheck", "report", "merge", *shards, "-o", "reports/index.html", "--json", "reports/merged.json")


@nox.session(python=["3.11"], tags=["lint"])
def lint(session: nox.Session) -> None:
    """ruff and mypy over the package, tests and this file."""
    _install(session, "")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(python=["3.11"], tags=["soak"], default=False)
def soak(session: nox.Session) -> None:
    """The faults of issue 17 repeated (signals to the process group, killed parents, processes a target leaves,
    two runs racing for one folder, damaged records), with orphans counted from `ps`: `nox -s soak -- ROUNDS`.
    Appends each session's counts to reports/soak.jsonl. Not in `nox`'s default sessions nor in plain pytest."""
    _install(session, "")
    rounds = session.posargs[0] if session.posargs else "1"
    session.run("pytest", "-q", "--soak", "tests/unit/test_soak.py", env={"CROSSCHECK_SOAK_ROUNDS": rounds})
