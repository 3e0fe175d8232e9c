"""crosscheck's performance figures, measured side by side on this machine in one run.

    python benchmarks/run_benchmarks.py            # every figure (about 10 minutes on 2 cores)
    python benchmarks/run_benchmarks.py --quick    # the same figures, fewer examples and repeats

Prints, each against its target (README "Performance"):
1. the default reference against PyTorch's float64 CPU convolution on the same problems, tiny to ~10⁸
   multiply-adds, for float32 problems (the reference evaluates them in float64 arithmetic, as torch's
   float64 convolution does) and float64 problems (the reference must be more accurate than float64);
2. the reference's FLOP rate against NumPy's float64 matrix product of the same size;
3. examples per second per backend and property in the `ci` profile (a `crosscheck run`), and JAX
   against torch;
4. the wall time of a default `crosscheck run` with every framework, and of `import crosscheck`;
5. what `crosscheck run --isa all` costs;
6. examples per second per backend on realistic shapes (`crosscheck run --shapes realistic`);
7. (opt-in, `--only ported`) examples per second of the ported paths (`crosscheck run --backends ported`).
Sections 4 and 6 also give the reference's share of the run's time (benchmarks/reference_share.py).

`--json FILE` also writes every number. Needs the frameworks installed (pip install -e ".[all]").
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from crosscheck import ConvSpec, make_problem
from crosscheck.reference import reference

# (batch, in channels, out channels, height = width) of 3×3 convolutions, padding 1: ~6e2 to ~1.5e8 MACs.
SWEEP = [
    (1, 1, 1, 8),
    (1, 3, 8, 16),
    (1, 16, 16, 16),
    (2, 16, 16, 24),
    (2, 16, 32, 32),
    (4, 32, 32, 32),
    (4, 64, 64, 32),
]
TARGET_REF_VS_TORCH = 2.0  # at 1e6 MACs and more
TARGET_REF_VS_TORCH_F64 = 6.0  # float64 problems (issue 19): the reference must be more accurate than float64
# Layers of real networks (label, batch, in, out, size, kernel, groups, dilation, stride), 1-D to 3-D, 3·10⁶ to 10⁸
# multiply-adds: the shapes where a reference computing one big im2col GEMM per group does worst.
LAYERS = [
    ("ResNet 1x1 256->64 14x14", 4, 256, 64, (14, 14), (1, 1), 1, 1, 1),
    ("ResNet 3x3 64 28x28", 2, 64, 64, (28, 28), (3, 3), 1, 1, 1),
    ("MobileNet dw3x3 144 28x28", 2, 144, 144, (28, 28), (3, 3), 144, 1, 1),
    ("ConvNeXt dw7x7 96 28x28", 1, 96, 96, (28, 28), (7, 7), 96, 1, 1),
    ("DeepLab 3x3 dil4 64 24x24", 1, 64, 64, (24, 24), (3, 3), 1, 4, 1),
    ("U-Net 3-D 3x3x3 16->16 12^3", 1, 16, 16, (12, 12, 12), (3, 3, 3), 1, 1, 1),
    ("wav2vec 1-D k3 s2 128 400", 1, 128, 128, (400,), (3,), 1, 1, 2),
]
TARGET_FLOP_SHARE = 0.5  # at 1e7 MACs and more
TARGET_EXAMPLES_PER_S = 100.0  # numpy, scipy, torch
TARGET_JAX_VS_TORCH = 3.0
TARGET_RUN_S = 60.0
TARGET_IMPORT_S = 0.3
FAST_BACKENDS = ("numpy", "scipy.correlate", "scipy.convolve", "scipy.ndimage", "scipy.fft", "torch")


# `--cpu-time`: one BLAS/OpenMP thread everywhere and process CPU seconds instead of wall seconds, for a machine
# shared with other work (a ratio of CPU times does not move when the scheduler gives the cores away).
CLOCK: Callable[[], float] = time.perf_counter
SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def timed(fn: Callable[[], object], *, min_time: float, min_reps: int = 3) -> float:
    """Median seconds of `fn` after one warm-up call, over at least `min_reps` calls and `min_time` seconds.

    Starts with a pause: torch's OpenMP workers spin for up to 200 ms after a call (KMP_BLOCKTIME) and
    OpenBLAS' after a GEMM, and on 2 cores a spinning worker halves whatever is timed next.
    """
    time.sleep(0.25)
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t = CLOCK()
        fn()
        times.append(CLOCK() - t)
        if len(times) >= 200:
            break
    return statistics.median(times)


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def reference_sweep(quick: bool) -> list[dict[str, Any]]:
    import torch

    if CLOCK is time.process_time:
        torch.set_num_threads(1)
    rows = []
    print("\n1. Default reference vs torch.nn.functional.conv2d in float64 (CPU), same problems, median times")
    print(
        f"   torch threads {torch.get_num_threads()}; target: reference ≤ {TARGET_REF_VS_TORCH}× torch at ≥ 1e6 MACs "
        f"(float64 problems: ≤ {TARGET_REF_VS_TORCH_F64}×, issue 19)"
    )
    print(f"   {'MACs':>9} {'dtype':>8} {'reference':>11} {'torch f64':>11} {'ratio':>7}  method")
    # One call of every problem first, largest first: glibc maps each large array afresh (page faults on
    # every call) until a larger block has been freed, which would time the allocator's warm-up instead.
    for n, c, o, hw in reversed(SWEEP):
        for dtype in ("float32", "float64"):
            reference(make_problem(ConvSpec(n, c, o, (hw, hw), (3, 3), padding=((1, 1), (1, 1)), dtype=dtype), 0))
    for n, c, o, hw in SWEEP:
        for dtype in ("float32", "float64"):
            spec = ConvSpec(n, c, o, (hw, hw), (3, 3), padding=((1, 1), (1, 1)), dtype=dtype)
            problem = make_problem(spec, 0)
            macs = spec.batch * spec.out_channels * int(np.prod(spec.out_size)) * spec.terms
            x = torch.from_numpy(problem.x.astype(np.float64))
            w = torch.from_numpy(problem.w.astype(np.float64))
            budget = 0.05 if quick else 0.3
            t_torch = timed(functools.partial(torch.nn.functional.conv2d, x, w, padding=1), min_time=budget)
            t_ref = timed(functools.partial(reference, problem), min_time=budget)
            method = reference(problem).method
            ratio = t_ref / t_torch
            mark = f"  {_ratio_verdict(ratio, dtype)}" if macs >= 1e6 else ""
            print(
                f"   {macs:9.2e} {dtype:>8} {t_ref * 1e3:9.3f}ms {t_torch * 1e3:9.3f}ms {ratio:6.2f}×  {method}{mark}"
            )
            rows.append({"macs": macs, "dtype": dtype, "reference_s": t_ref, "torch_f64_s": t_torch, "ratio": ratio})
    return rows


def _ratio_verdict(ratio: float, dtype: str) -> str:
    if dtype == "float64":
        strict, issue = verdict(ratio <= TARGET_REF_VS_TORCH), verdict(ratio <= TARGET_REF_VS_TORCH_F64)
        return f"{strict} {TARGET_REF_VS_TORCH}×, {issue} {TARGET_REF_VS_TORCH_F64}×"
    return verdict(ratio <= TARGET_REF_VS_TORCH)


def layer_sweep(quick: bool) -> list[dict[str, Any]]:
    """The reference against torch's float64 convolution on the layers of real networks (`LAYERS`)."""
    import torch

    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}
    print("\n1b. The same on layers of real networks (padding k//2·dilation)")
    print(f"   {'layer':<28} {'MACs':>9} {'dtype':>8} {'reference':>11} {'torch f64':>11} {'ratio':>7}")
    rows = []
    for label, n, c, o, size, kernel, groups, dilation, stride in LAYERS:
        rank = len(size)
        pads = tuple((k // 2 * dilation, k // 2 * dilation) for k in kernel)
        for dtype in ("float32", "float64"):
            spec = ConvSpec(
                n, c, o, size, kernel, stride=(stride,) * rank, dilation=(dilation,) * rank, groups=groups,
                padding=pads, dtype=dtype,
            )  # fmt: skip
            problem = make_problem(spec, 0)
            macs = spec.batch * spec.out_channels * int(np.prod(spec.out_size)) * spec.terms
            x = torch.from_numpy(problem.x.astype(np.float64))
            w = torch.from_numpy(problem.w.astype(np.float64))
            call = functools.partial(
                conv[rank], x, w, stride=stride, padding=tuple(p for p, _ in pads), dilation=dilation, groups=groups
            )
            budget = 0.05 if quick else 0.3
            t_torch = timed(call, min_time=budget)
            t_ref = timed(functools.partial(reference, problem), min_time=budget)
            ratio = t_ref / t_torch
            print(
                f"   {label:<28} {macs:9.2e} {dtype:>8} {t_ref * 1e3:9.3f}ms {t_torch * 1e3:9.3f}ms {ratio:6.2f}×"
                f"  {_ratio_verdict(ratio, dtype)}"
            )
            rows.append({"layer": label, "macs": macs, "dtype": dtype, "reference_s": t_ref, "torch_f64_s": t_torch})
    return rows


def flop_rates(sweep: list[dict[str, Any]], quick: bool) -> list[dict[str, Any]]:
    print("\n2. Reference FLOP rate (2·MACs / time) vs NumPy float64 matmul of the same MAC count (square)")
    print(f"   target: ≥ {TARGET_FLOP_SHARE:.0%} of matmul at ≥ 1e7 MACs")
    print(f"   {'MACs':>9} {'dtype':>8} {'reference':>12} {'matmul':>12} {'share':>7}")
    rows = []
    for row in sweep:
        if row["macs"] < 1e6:
            continue
        side = round(row["macs"] ** (1 / 3))
        a, b = np.random.default_rng(0).random((2, side, side))
        t_mm = timed(functools.partial(np.matmul, a, b), min_time=0.05 if quick else 0.3)
        ref_rate = 2 * row["macs"] / row["reference_s"] / 1e9
        mm_rate = 2 * side**3 / t_mm / 1e9
        share = ref_rate / mm_rate
        mark = f"  {verdict(share >= TARGET_FLOP_SHARE)}" if row["macs"] >= 1e7 else ""
        print(f"   {row['macs']:9.2e} {row['dtype']:>8} {ref_rate:7.2f} GF/s {mm_rate:7.2f} GF/s {share:6.0%}{mark}")
        rows.append({**row, "reference_gflops": ref_rate, "matmul_gflops": mm_rate, "share": share})
    return rows


SHARE_SCRIPT = Path(__file__).resolve().parent / "reference_share.py"
TARGET_REFERENCE_SHARE = 1 / 3  # of a realistic-profile run's time (issue 19)


def crosscheck_run(
    args: list[str], out: Path, *, ci: bool, env_extra: dict[str, str] | None = None
) -> tuple[float, dict[str, Any]]:
    """Wall seconds and record of `crosscheck run ARGS` in a fresh process (CI unset unless `ci`).

    The record gains "reference_s": the seconds the run spent in the reference (benchmarks/reference_share.py
    times it in the run's main process, where the reference runs; the backends run in their workers).
    """
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "CROSSCHECK_PROFILE")}
    if ci:
        env["CI"] = "true"
    env.update(env_extra or {})
    out.mkdir(parents=True, exist_ok=True)
    seconds = out / "reference-seconds.json"
    cmd = [sys.executable, str(SHARE_SCRIPT), str(seconds), "--", "run", "--out", str(out), *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):  # 1: a property failed, which is a finding, not a benchmark error
        sys.exit(f"benchmark: {' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    record: dict[str, Any] = json.loads((out / "crosscheck.json").read_text())
    record["reference_s"] = json.loads(seconds.read_text())["reference_s"]
    return wall, record


def _reference_share(record: dict[str, Any], wall: float, target: float | None = None) -> str:
    share = record["reference_s"] / wall
    mark = f"  target < {target:.0%}: {verdict(share < target)}" if target is not None else ""
    return f"the reference took {record['reference_s']:.1f} s of it ({share:.0%}){mark}"


def _rates(record: dict[str, Any]) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Examples per second by backend and property, and each backend's overall rate."""
    rates: dict[str, dict[str, float]] = {}
    totals: dict[str, list[float]] = {}
    for r in record["results"]:
        if r["status"] not in ("passed", "failed", "expected_failure") or not r.get("examples"):
            continue
        rates.setdefault(r["backend"], {})[r["property"]] = r["examples_per_second"]
        t = totals.setdefault(r["backend"], [0.0, 0.0])
        t[0] += r["examples"]
        t[1] += r["duration_s"]
    return rates, {b: n / s for b, (n, s) in totals.items()}


def _jax_vs_torch(label: str, rates: dict[str, dict[str, float]], overall: dict[str, float]) -> dict[str, float]:
    ratios = {p: rates["torch"][p] / rates["jax"][p] for p in rates["jax"] if p in rates["torch"] and rates["jax"][p]}
    ratios["overall"] = overall["torch"] / overall["jax"]
    worst = max((p for p in ratios if p != "overall"), key=ratios.__getitem__)
    print(
        f"   JAX vs torch, {label}: torch/jax examples per second {ratios['overall']:.2f}× overall, worst "
        f"{ratios[worst]:.2f}× ({worst}); target ≤ {TARGET_JAX_VS_TORCH}×: "
        f"{verdict(ratios['overall'] <= TARGET_JAX_VS_TORCH)} overall, {verdict(ratios[worst] <= TARGET_JAX_VS_TORCH)} "
        "per property"
    )
    return ratios


def examples_per_second(quick: bool, out: Path) -> dict[str, Any]:
    args = ["--profile", "ci"] + (["--max-examples", "50"] if quick else [])
    print(f"\n3. Examples per second, `crosscheck run {' '.join(args)}` (every installed backend), best of 2 runs")
    # Run 1 starts JAX from an empty executable store (a fresh machine); run 2 finds it filled (a rerun, or CI
    # with its cache restored). Other backends take the better of the two runs: one property's rate comes from
    # about a second of work, which a scheduler hiccup on 2 cores can cost a third.
    store = {"CROSSCHECK_JAX_CACHE": str(out / "jax-store")}
    wall, cold_record = crosscheck_run(args, out / "cold", ci=True, env_extra=store)
    wall_warm, warm_record = crosscheck_run(args, out / "warm", ci=True, env_extra=store)
    cold, cold_overall = _rates(cold_record)
    warm, warm_overall = _rates(warm_record)
    rates = {b: {p: max(v, warm.get(b, {}).get(p, 0.0)) for p, v in by.items()} for b, by in cold.items()}
    overall = {b: max(v, warm_overall.get(b, 0.0)) for b, v in cold_overall.items()}
    if "jax" in rates:  # JAX's rates are reported per run below, not mixed
        rates["jax"], overall["jax"] = cold["jax"], cold_overall["jax"]
    props = sorted({p for by in rates.values() for p in by})
    print(
        f"   run walls {wall:.1f} s and {wall_warm:.1f} s; "
        f"target: ≥ {TARGET_EXAMPLES_PER_S:.0f}/s for numpy, scipy, torch"
    )
    width = max(len(p) for p in props)
    for backend, by in rates.items():
        worst = min(by.values())
        mark = f"  {verdict(worst >= TARGET_EXAMPLES_PER_S)} (slowest property)" if backend in FAST_BACKENDS else ""
        print(f"   {backend:<16} overall {overall[backend]:7.1f}/s  slowest {worst:7.1f}/s{mark}")
    print(f"\n   {'property':<{width}} " + " ".join(f"{b[:10]:>10}" for b in rates))
    for p in props:
        print(f"   {p:<{width}} " + " ".join(f"{rates[b].get(p, float('nan')):10.1f}" for b in rates))
    result: dict[str, Any] = {"walls_s": [wall, wall_warm], "rates": rates, "overall": overall}
    if "jax" in cold and "torch" in cold:
        print()
        result["jax_vs_torch_cold"] = _jax_vs_torch("run 1, empty executable store", cold, cold_overall)
        result["jax_vs_torch_warm"] = _jax_vs_torch("run 2, store filled", warm, warm_overall)
        result["jax_warm_rates"] = warm["jax"]
    return result


def realistic_examples_per_second(quick: bool, out: Path) -> dict[str, Any]:
    """Examples per second per backend when every example is a real network's layer, scaled to ≤ 5·10⁷
    multiply-adds (strategies.realistic): the workload whose blocked, multi-threaded kernels the small default
    problems never reach, and where the reference's cost shows."""
    examples = "3" if quick else "10"
    args = ["--shapes", "realistic", "--profile", "ci", "--no-pairwise", "--max-examples", examples]
    print(f"\n6. Realistic shapes: `crosscheck run {' '.join(args)}` (every installed backend, JAX store empty)")
    return _run_rates(args, out, TARGET_REFERENCE_SHARE)


def _run_rates(args: list[str], out: Path, share_target: float | None = None) -> dict[str, Any]:
    """`crosscheck run ARGS` with an empty JAX store: its wall, the reference's share of it, and each backend's
    overall and slowest rate."""
    wall, record = crosscheck_run(args, out, ci=True, env_extra={"CROSSCHECK_JAX_CACHE": str(out / "jax-store")})
    rates, overall = _rates(record)
    print(f"   run wall {wall:.1f} s; {_reference_share(record, wall, share_target)}")
    for backend, by in rates.items():
        worst = min(by, key=by.__getitem__)
        print(f"   {backend:<16} overall {overall[backend]:7.2f}/s  slowest {by[worst]:7.2f}/s ({worst})")
    return {"wall_s": wall, "reference_s": record["reference_s"], "rates": rates, "overall": overall}


def ported_examples_per_second(quick: bool, out: Path) -> dict[str, Any]:
    """Examples per second of the ported paths (registry.PORTED: compiled, layer-level, converted), which a default
    run leaves out: each example costs a compilation, a layer build or a conversion. Opt-in (`--only ported`)."""
    examples = "5" if quick else "20"
    args = ["--backends", "ported", "--profile", "ci", "--no-pairwise", "--max-examples", examples]
    print(f"\n7. Ported paths: `crosscheck run {' '.join(args)}` (JAX store empty, torch's inductor cache as found)")
    return _run_rates(args, out)


def _best_of(code: str, runs: int = 5) -> list[float]:
    return [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(runs)
    ]


def default_run_and_import(out: Path) -> dict[str, Any]:
    print("\n4. Wall times")
    # A fresh machine: JAX's executable store starts empty (the default run draws new examples anyway).
    store = {"CROSSCHECK_JAX_CACHE": str(out / "jax-store")}
    wall, record = crosscheck_run([], out / "run", ci=False, env_extra=store)
    available = [b["name"] for b in record["backends"] if b["available"]]
    print(
        f"   default `crosscheck run` (profile {record['run']['profile']}, {len(available)} backends, "
        f"empty JAX store): {wall:.1f} s  target < {TARGET_RUN_S:.0f} s: {verdict(wall < TARGET_RUN_S)}; "
        + _reference_share(record, wall)
    )
    timer = "import time; t = time.perf_counter(); {}; print(time.perf_counter() - t)"
    imports = _best_of(timer.format("import crosscheck"))
    api = _best_of(timer.format("from crosscheck import ConvSpec, compare, make_problem; import crosscheck.reference"))
    cli = _best_of(timer.format("import crosscheck.cli.main"))
    print(
        f"   import crosscheck: {min(imports):.3f} s (best of 5)  target < {TARGET_IMPORT_S} s: "
        f"{verdict(min(imports) < TARGET_IMPORT_S)}; it loads nothing until used, so also:"
    )
    print(f"   the public API (ConvSpec, compare, make_problem, the reference): {min(api):.3f} s")
    print(f"   the command line's modules (crosscheck.cli.main): {min(cli):.3f} s")
    return {
        "default_run_s": wall,
        "default_run_reference_s": record["reference_s"],
        "profile": record["run"]["profile"],
        "backends": available,
        "import_s": imports,
        "import_api_s": api,
        "import_cli_s": cli,
    }


def isa_sweep(out: Path, quick: bool) -> dict[str, Any]:
    """What `crosscheck run --isa all` costs: the wall time of each level (the same options, one level each) and of
    the whole sweep in one command."""
    from crosscheck.core.hardware import machine_levels

    print("\n5. ISA sweep (crosscheck run --isa; dev profile, no pairwise)")
    base = ["--profile", "dev", "--no-pairwise"] + (["--max-examples", "10"] if quick else [])
    store = {"CROSSCHECK_JAX_CACHE": str(out / "jax-store")}  # JAX starts cold at every level, as on a fresh machine
    per_level: dict[str, float] = {}
    for level in machine_levels():
        wall, record = crosscheck_run([*base, "--isa", level], out / level, ci=False, env_extra=store)
        ran = sorted({r["backend"] for r in record["results"]})
        per_level[level] = wall
        print(f"   {level:<12} {wall:6.1f} s  ({len(ran)} backends: {', '.join(ran)})")
    wall, record = crosscheck_run([*base, "--isa", "all"], out / "all", ci=False, env_extra=store)
    print(f"   --isa all    {wall:6.1f} s  ({len(machine_levels())} levels: {', '.join(machine_levels())})")
    return {"levels": per_level, "all_s": wall, "summary": record["summary"]}


def machine() -> dict[str, Any]:
    import platform

    info = {"python": platform.python_version(), "cpus": os.cpu_count(), "numpy": np.__version__}
    try:
        info["cpu"] = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and 50 examples per property")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument(
        "--only",
        default="reference,examples,wall,isa,realistic",
        help="comma-separated sections: reference, examples, wall, isa, realistic, ported (opt-in: the ported paths)",
    )
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="sections 1-2 on one thread, timed in process CPU seconds (a machine shared with other work)",
    )
    args = parser.parse_args(argv)
    if args.cpu_time:
        global CLOCK
        if any(os.environ.get(k) != v for k, v in SINGLE_THREAD_ENV.items()):
            # BLAS reads its thread count when NumPy loads, which has happened: start again with it set.
            os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **SINGLE_THREAD_ENV})
        CLOCK = time.process_time
    sections = set(args.only.split(","))
    unknown = sections - {"reference", "examples", "wall", "isa", "realistic", "ported"}
    if unknown:
        parser.error(
            f"--only: unknown section {', '.join(sorted(unknown))}; "
            "expected reference, examples, wall, isa, realistic, ported"
        )
    info = machine()
    print(f"crosscheck benchmarks on {info['cpu']}, {info['cpus']} CPUs, Python {info['python']}")
    if args.cpu_time:
        print("sections 1-2: one thread, process CPU seconds (--cpu-time)")
    results: dict[str, Any] = {"machine": info}
    tmp = Path(tempfile.mkdtemp(prefix="crosscheck-bench-"))
    try:
        if "reference" in sections and importlib.util.find_spec("torch") is None:
            print("\n1-2. skipped: torch is not installed (pip install -c constraints/ci.txt -e '.[all]')")
        elif "reference" in sections:
            results["reference_vs_torch"] = reference_sweep(args.quick)
            results["flop_rates"] = flop_rates(results["reference_vs_torch"], args.quick)
            results["layers_vs_torch"] = layer_sweep(args.quick)
        if "examples" in sections:
            results["examples"] = examples_per_second(args.quick, tmp)
        if "wall" in sections:
            results["wall"] = default_run_and_import(tmp / "default")
        if "isa" in sections:
            results["isa"] = isa_sweep(tmp / "isa", args.quick)
        if "realistic" in sections:
            results["realistic"] = realistic_examples_per_second(args.quick, tmp / "realistic")
        if "ported" in sections:
            results["ported"] = ported_examples_per_second(args.quick, tmp / "ported")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
