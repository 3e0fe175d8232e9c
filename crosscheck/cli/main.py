"""The `crosscheck` command line."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from crosscheck.core.errors import CrosscheckError
from crosscheck.run import signals
from crosscheck.run.record import FAILING_OUTCOMES, FINDING_OUTCOMES

if TYPE_CHECKING:
    from crosscheck.backends.base import Backend
    from crosscheck.run.sharding import Shard

DEFAULT_TIMEOUT_S = 60.0  # crosscheck.backends.isolated's, without importing it at start-up

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, exit 2: bad usage never prints a traceback or a wall of help.
        self.exit(EXIT_USAGE, f"crosscheck: error: {message} (see 'crosscheck --help')\n")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative seed, got {text!r}")
    return value


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _shard(text: str) -> Shard:
    from crosscheck.run.sharding import Shard

    try:
        return Shard.parse(text)
    except CrosscheckError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _macs(text: str) -> int:
    from crosscheck.strategies.realistic import parse_macs

    try:
        return parse_macs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _levels(text: str) -> list[str]:
    from crosscheck.core.hardware import parse_levels

    try:
        return parse_levels(text)
    except CrosscheckError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dims(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(sorted({int(t) for t in _csv(text)}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected spatial dimensions like 1,2,3, got {text!r}") from None
    if not dims or any(d not in (1, 2, 3) for d in dims):
        raise argparse.ArgumentTypeError(f"expected spatial dimensions among 1,2,3, got {text!r}")
    return dims


def _verify_dtypes(text: str) -> tuple[str, ...]:
    from crosscheck.run.verify_dtypes import parse_dtypes

    try:
        dtypes = parse_dtypes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    assert dtypes is not None
    return dtypes


def _accuracy(text: str) -> str:
    from crosscheck.checks.accuracy import parse

    try:
        return parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    from crosscheck.run.profiles import DISTINCT_BUGS, PROFILES

    parser = _Parser(prog="crosscheck", description="Property-based cross-framework convolution checks.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="check backends against the reference and write a record")
    run.add_argument("--backends", type=_csv, help="comma-separated backends (default: all installed)")
    run.add_argument("--properties", type=_csv, help="comma-separated properties (default: all)")
    run.add_argument("--max-examples", type=_positive_int, help="examples per property per backend")
    run.add_argument("--seed", type=_seed, help="random seed (default: the profile's)")
    run.add_argument("--profile", choices=PROFILES, help="Hypothesis profile (default: ci under CI, else dev)")
    run.add_argument("--out", type=Path, default=Path("reports"), help="output folder (default: reports)")
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device for frameworks that have GPUs")
    run.add_argument("--no-pairwise", action="store_true", help="skip the pairwise agreement of backends")
    run.add_argument(
        "--distinct-bugs",
        type=_positive_int,
        default=DISTINCT_BUGS,
        metavar="N",
        help=f"after a property's first failure, search on for other bugs, up to N in all (default: {DISTINCT_BUGS};"
        " 1 stops at the first)",
    )
    run.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="run only shard I of N (1-based): N machines with the same other options share one run without "
        "overlap; merge their records with 'crosscheck report merge'",
    )
    run.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_TIMEOUT_S,
        help="seconds a backend call may take before it counts as hung",
    )
    run.add_argument(
        "--isa",
        type=_levels,
        default=["native"],
        metavar="LEVELS",
        help="check the kernels of other CPUs: run the frameworks capped to each ISA level (comma list of avx2, "
        "avx512, avx512-bf16, avx512-fp16, amx, amx-fp16; 'native': no cap; 'all': every level this machine runs), "
        "one record with a row per backend and level",
    )
    run.add_argument(
        "--no-isolation",
        action="store_true",
        help="run backends in this process (faster; a crashing backend then ends the run)",
    )
    run.add_argument(
        "--shapes",
        choices=("default", "realistic"),
        default="default",
        help="where problems come from: 'default' (small problems, one in 16 a scaled layer of a real network) or "
        "'realistic' (every problem a real network's layer, crosscheck/data/realistic_layers.json)",
    )
    run.add_argument(
        "--max-macs",
        type=_macs,
        metavar="N",
        help="with --shapes realistic: multiply-adds per example (default 5e7; e.g. 2e8 for larger layers)",
    )
    run.set_defaults(func=cmd_run)

    verify = sub.add_parser(
        "verify",
        help="check your own convolution function",
        description="Check function(x, w, *, stride, padding, dilation, groups) against the reference. "
        "Exit 0: verified; 1: mismatch, crash, hang, wrong shape/dtype, NaN/inf, or nothing supported; 2: bad usage.",
    )
    verify.add_argument("target", help="package.module:function or path/to/file.py:function")
    verify.add_argument(
        "--dtype",
        type=_verify_dtypes,
        help="input dtypes, comma-separated (default: float64, float32, float16, bfloat16, and int32, int64 where "
        "the function takes them)",
    )
    verify.add_argument("--dims", type=_dims, default=(1, 2, 3), help="spatial dimensions (default: 1,2,3)")
    verify.add_argument(
        "--accuracy",
        type=_accuracy,
        default="elementwise",
        help="the error bound results are judged by: elementwise (default; direct sums, im2col + GEMM), normwise "
        "(FFT-based functions), winograd (Winograd F(m, r), m = 2, 4, 6; winograd:M for one m); docs/accuracy.md",
    )
    verify.add_argument("--max-examples", type=_positive_int, help="examples per property (default: 200)")
    verify.add_argument("--seed", type=_seed, help="random seed (default: random, or the CI profile's)")
    verify.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_TIMEOUT_S,
        help="seconds one call may take before it counts as hung (default 60)",
    )
    verify.add_argument("--report", type=Path, help="write the JSON record here (and the HTML report beside it)")
    verify.set_defaults(func=cmd_verify)

    backends = sub.add_parser("backends", help="list backends, versions, devices and capabilities")
    backends.add_argument("--no-isolation", action="store_true", help="load the backends in this process")
    backends.set_defaults(func=cmd_backends)

    explain = sub.add_parser("explain", help="the seed's worked example step by step, checked on each backend")
    explain.add_argument("--backends", type=_csv, help="comma-separated backends (default: all installed)")
    explain.set_defaults(func=cmd_explain)

    report = sub.add_parser("report", help="render or merge records into a self-contained HTML report")
    rsub = report.add_subparsers(dest="report_command", metavar="{render,merge}", required=True, parser_class=_Parser)
    render = rsub.add_parser("render", help="render one record (crosscheck.json) as HTML")
    render.add_argument("record", type=Path, help="the record, e.g. reports/crosscheck.json")
    render.add_argument("-o", "--output", type=Path, help="the HTML file (default: beside the record, .html)")
    render.set_defaults(func=cmd_report_render)
    merge = rsub.add_parser("merge", help="one report from several records (the shards of a CI matrix)")
    merge.add_argument("records", type=Path, nargs="+", help="the records to merge")
    merge.add_argument("-o", "--output", type=Path, default=Path("reports/index.html"), help="the HTML file")
    merge.add_argument("--json", type=Path, help="also write the merged record here")
    merge.set_defaults(func=cmd_report_merge)
    return parser


def _version() -> str:
    from crosscheck import __version__

    return f"crosscheck {__version__}"


# Short dtype names for the terminal table, so that a row fits 100 columns.
_DTYPE_ABBREV = {
    "float64": "f64",
    "float32": "f32",
    "float16": "f16",
    "bfloat16": "bf16",
    "int32": "i32",
    "int64": "i64",
    "complex64": "c64",
    "complex128": "c128",
}
_STYLES = {"passed": "green", "failed": "bold red", "error": "yellow", "interrupted": "yellow", "unsupported": "dim"}
TABLE_WIDTH = 100


def summary_table(record: dict[str, Any], colour: bool = False) -> str:
    """The run's verdicts in at most TABLE_WIDTH columns: each backend a heading row over its properties, a reason
    as a numbered footnote below the table (one per distinct reason), the worst error ÷ bound with its dtype. Colour
    only when `colour` (a terminal that shows it)."""
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold" if colour else "")
    table.add_column("backend / property", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("examples", justify="right", no_wrap=True)
    table.add_column("ex/s", justify="right", no_wrap=True)
    table.add_column("worst err/bound", no_wrap=True)
    notes: dict[str, int] = {}

    def status_cell(status: str, reason: str | None) -> str:
        if not reason or status == "interrupted":
            return status
        return f"{status} [{notes.setdefault(reason, len(notes) + 1)}]"

    def row(*cells: str, style: str = "") -> None:
        # Text, not markup: a backend's name or a reason may hold square brackets.
        table.add_row(*(Text(c) for c in cells), style=style if colour else "")

    previous = None
    for r in record["results"]:
        if r["backend"] != previous:
            row(r["backend"], "", "", "", "", style="bold")
            previous = r["backend"]
        by_dtype = r["by_dtype"].items()
        stats = [(d, st["max_ratio"]) for d, st in by_dtype if st["examples"] and st["max_ratio"] is not None]
        d, worst = max(stats, key=lambda t: t[1]) if stats else ("", None)
        eps = r.get("examples_per_second")
        row(
            f"  {r['property']}",
            status_cell(r["status"], r.get("reason")),
            str(r["examples"]),
            f"{eps:.0f}" if eps else "-",
            f"{worst:.3g} ({_DTYPE_ABBREV.get(d, d)})" if worst is not None else "",
            style=_STYLES.get(r["status"], ""),
        )
    for b in record["backends"]:
        if not b["available"]:
            native_only = b.get("isa") not in (None, "native")  # a capped level, and no switch to cap it with
            row(b["name"], status_cell("native level only" if native_only else "not installed", b.get("reason")))
    out = io.StringIO()
    console = Console(
        file=out,
        width=TABLE_WIDTH,
        force_terminal=colour,
        no_color=not colour,
        color_system="standard" if colour else None,
        highlight=False,
        soft_wrap=False,
    )
    console.print(table, crop=True)
    for reason, mark in notes.items():
        console.print(Text(textwrap.fill(reason, TABLE_WIDTH, initial_indent=f"[{mark}] ", subsequent_indent="    ")))
    lines = ["\n".join(line.rstrip() for line in out.getvalue().rstrip("\n").splitlines())]
    pw = record.get("pairwise")
    if pw:
        worst_pair = max((m["max_ratio"] for m in pw["matrix"]), default=0.0)
        lines.append(
            f"\npairwise agreement: {pw['status']}, {pw['examples']} examples, {len(pw['matrix'])} pairs, "
            f"largest |a - b| / (bound_a + bound_b) {worst_pair:.3g}"
        )
        for f in pw["failures"]:
            lines.append(f"  {f['message']}")
    lines += coverage_lines(record)
    s = record["summary"]
    skipped = f", {s['skipped']} not run" if s.get("skipped") else ""
    lines.append(
        f"\n{s['passed']} passed, {s['failed']} failed, {s['unsupported']} unsupported, {s['error']} errors{skipped}"
    )
    return "\n".join(lines)


def coverage_lines(record: dict[str, Any]) -> list[str]:
    """Per backend, the share of the feature pairs and triples it can build that the run ran, and the implementations
    its calls reached where the framework tells (crosscheck.strategies.coverage)."""
    cov = record.get("coverage") or {}
    if not cov:
        return []
    lines = ["\ncoverage (pairs and triples of the feature values each backend supports; implementations it ran):"]
    for name, c in cov.items():
        p, t = c["pairs"], c["triples"]
        text = (
            f"{name}: pairs {p['covered']}/{p['total']} {100 * (p['ratio'] or 0):.1f}%, "
            f"triples {t['covered']}/{t['total']} {100 * (t['ratio'] or 0):.1f}%, {c['examples']} examples"
            + (f" ({c['sweep_examples']} of its covering sweep)" if c.get("sweep_examples") else "")
        )
        lines.append(textwrap.fill(text, TABLE_WIDTH, initial_indent="  ", subsequent_indent="      "))
        counts = (c.get("implementations") or {}).get("counts") or {}
        if counts:
            text = ", ".join(f"{impl}={n}" for impl, n in counts.items())
            lines.append(textwrap.fill(text, TABLE_WIDTH, initial_indent="    ", subsequent_indent="      "))
    return lines


_OUTCOME_MARK = {
    "stale": "STALE",
    "beyond its contract": "BEYOND",
    "fails differently": "DIFFERS",
    "reproduced": "R",
    "not reproduced here": "·",
    "not applicable": "n/a",
    "pinned by a test": "test",
    "no example": "-",
}


def _finding_outcomes(record: dict[str, Any]) -> dict[tuple[str, str], tuple[int, str, str]]:
    """(finding id, ISA level) -> (rank in FINDING_OUTCOMES, outcome, note). A finding several properties replayed or
    reached counts once per level, with its gravest outcome."""
    best: dict[tuple[str, str], tuple[int, str, str]] = {}
    for r in record["results"]:
        for f in r.get("known_findings") or []:
            outcome = str(f.get("outcome") or ("reproduced" if f.get("reproduced") else "not reproduced here"))
            rank = FINDING_OUTCOMES.index(outcome) if outcome in FINDING_OUTCOMES else len(FINDING_OUTCOMES)
            if outcome in ("not reproduced here", "no example"):
                note = f" (recorded: {f['where']})" if f.get("where") else ""
            elif outcome == "reproduced":
                note = ""
            else:
                text = str(f.get("message") or f.get("pinned_by") or "")
                note = f": {text.splitlines()[0][:160]}" if text else ""
            key = (str(f["id"]), str(r.get("isa") or "native"))
            if key not in best or rank < best[key][0]:
                best[key] = (rank, outcome, note)
    return best


def findings_summary(record: dict[str, Any]) -> str:
    """Which known findings reproduce on this machine and which do not, with each backend's ISA class: grouped by
    outcome for one level, as a finding × level table for `--isa` runs of several levels."""
    best = _finding_outcomes(record)
    if not best:
        return ""
    levels = list(record["run"].get("isa_levels") or [])
    if len(levels) > 1:
        ids = sorted({fid for fid, _ in best})
        width = max(len(i) for i in ids)
        native = record.get("environment", {}).get("cpu_isa_class")
        heads = [f"native={native}" if lvl == "native" and native else lvl for lvl in levels]
        cols = [max(len(h), 7) for h in heads]
        lines = [
            "\nknown findings per ISA level (R reproduced, · not reproduced here, n/a cannot run there, "
            "test pinned by a test, - no example; STALE, BEYOND, DIFFERS fail the run):",
            "  " + " " * width + "  " + "  ".join(f"{h:<{c}}" for h, c in zip(heads, cols)),
        ]
        for fid in ids:
            marks = [_OUTCOME_MARK.get(best[(fid, lvl)][1], "?") if (fid, lvl) in best else "" for lvl in levels]
            lines.append(f"  {fid:<{width}}  " + "  ".join(f"{m:<{c}}" for m, c in zip(marks, cols)).rstrip())
        failing = [(k, v) for k, v in sorted(best.items()) if v[1] in FAILING_OUTCOMES]
        lines += [f"  {fid} @ {lvl}: {outcome.upper()}{note}" for (fid, lvl), (_, outcome, note) in failing]
        return "\n".join(lines)
    dispatch = record.get("environment", {}).get("dispatch", {})
    by_class: dict[str, list[str]] = {}
    for b, d in dispatch.items():
        by_class.setdefault(str(d.get("isa_class")), []).append(b)
    classes = "; ".join(f"{c}: {', '.join(bs)}" for c, bs in by_class.items())
    lines = [f"\nknown findings on this machine (kernels: {classes or 'unknown'}):"]
    for outcome in FINDING_OUTCOMES:
        found = sorted((fid, note) for (fid, _), (_, o, note) in best.items() if o == outcome)
        if found:
            label = outcome.upper() if outcome in FAILING_OUTCOMES else outcome
            lines.append(f"  {label} ({len(found)}):")
            lines += [f"    {fid}{note}" for fid, note in found]
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    from crosscheck.cli.progress import LiveProgress, use_colour
    from crosscheck.run.profiles import default_profile
    from crosscheck.run.session import RunOptions, check_isolation, run_levels, select_properties
    from crosscheck.strategies.realistic import shapes_option

    select_properties(args.properties)  # bad usage is reported before any framework is imported
    if args.max_macs is not None and args.shapes != "realistic":
        raise CrosscheckError("--max-macs: applies only with --shapes realistic")
    for level in args.isa:
        check_isolation(level, not args.no_isolation)
    path, html = args.out / "crosscheck.json", args.out / "crosscheck.html"
    prepare_outputs([path, html])  # an unwritable --out is refused now, not after the whole run
    # Hypothesis mixes integer constants of every local module loaded so far into its draws (providers.py,
    # _get_local_constants): loading the report's modules only after the run would give a second run in this
    # process other examples for the same seed.
    import crosscheck.report.render  # noqa: F401

    options = RunOptions(
        backends=args.backends,
        properties=args.properties,
        profile=args.profile or default_profile(),
        max_examples=args.max_examples,
        seed=args.seed,
        device=args.device,
        pairwise=not args.no_pairwise,
        command=["crosscheck", *sys.argv[1:]],
        isolation=not args.no_isolation,
        timeout=args.timeout,
        shard=args.shard,
        distinct_bugs=args.distinct_bugs,
        shapes=shapes_option(args.shapes, args.max_macs),
    )
    from hypothesis.reporting import with_reporter

    progress = LiveProgress()
    try:
        # Hypothesis prints its own notes (a seed to reuse after Ctrl-C): on their own line, not over the status.
        with with_reporter(progress.note):
            record = run_levels(options, args.isa, progress=progress)
    except KeyboardInterrupt:
        # Only before the first check started (importing frameworks): there is nothing to keep.
        progress.close()
        print("interrupted before any check finished: nothing written", file=sys.stderr)
        return signals.exit_code()
    progress.close()
    _write_outputs(record, html, str(path), record_path=path)
    print(summary_table(record, colour=use_colour(sys.stdout)))
    print(findings_summary(record))
    for r in record["results"]:
        for f in r["failures"]:
            triage = f.get("triage") or "new discrepancy"
            text = f"\n--- {r['backend']} / {r['property']}: {triage} ---\n{f['message']}"
            if f.get("reproducer"):
                text += f"\n\nReproduce with:\n{f['reproducer']}"
            print(text)
    print(f"\nrecord: {path}\nreport: {html}")
    if args.shard:
        print(
            f"shard {args.shard} of plan {record['run']['shard_plan']}: "
            f"merge all {args.shard.count} records with 'crosscheck report merge'"
        )
    if record["run"]["interrupted"] or signals.received():
        print("interrupted: the record and the report hold what finished", file=sys.stderr)
        return signals.exit_code()
    bad = record["summary"]["failed"] + record["summary"]["error"]
    return EXIT_MISMATCH if bad else EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from hypothesis.reporting import with_reporter

    from crosscheck.cli.progress import LiveProgress
    from crosscheck.verify import format_verification, verify

    path = None
    if args.report:
        # --report x.html still gets its JSON record (beside it, as x.json), never overwritten by the HTML.
        path = args.report.with_suffix(".json") if args.report.suffix == ".html" else args.report
        # Checked before the run: an unwritable --report must not turn a verdict into a usage error afterwards.
        prepare_outputs([path, path.with_suffix(".html")])
    # The failures are printed below the results; the report holds them too only when one is written.
    progress = LiveProgress(failure_note="minimal example below" + (" and in the report" if args.report else ""))
    try:
        with with_reporter(progress.note):
            v = verify(
                args.target,
                dtypes=args.dtype,
                dims=args.dims,
                accuracy=args.accuracy,
                max_examples=args.max_examples,
                seed=args.seed,
                timeout=args.timeout,
                progress=progress,
                command=["crosscheck", *sys.argv[1:]],
            )
    except KeyboardInterrupt:
        # Only while the target was loading: no check has started, there is nothing to keep.
        print("interrupted before any check finished: nothing written", file=sys.stderr)
        return signals.exit_code()
    finally:
        progress.close()
    print(format_verification(v))
    _print_target_notes(v.record, failed=v.status in ("failed", "unsupported"))  # a crash or hang quotes it
    if path is not None:
        html = path.with_suffix(".html")
        _write_outputs(v.record, html, str(path), record_path=path)
        print(f"\nrecord: {path}\nreport: {html}")
    return signals.exit_code() if signals.received() else v.exit_code


def _print_target_notes(record: dict[str, Any], failed: bool) -> None:
    """What the function did besides answering: processes it left running, what it printed (captured)."""
    from crosscheck.backends.isolated import output_note

    # One function, one worker: every dtype's row describes the same worker, so its counts are told once.
    for b in [b for b in record["backends"] if b.get("isolation")][:1]:
        iso = b["isolation"]
        left = int(iso.get("children_left") or 0)
        if left:
            many = "es" if left > 1 else ""
            print(f"\nnote: the function left {left} process{many} running after its calls; crosscheck ended them")
        printed = int(iso.get("output_bytes") or 0)
        last = iso.get("last_output") or {}
        if failed and last.get("bytes"):
            note = output_note(int(last["bytes"]), str(last.get("tail") or ""))
            print(
                f"\nthe function's output in its last call that printed (the failing example is replayed last):{note}"
            )
        elif printed:
            print(f"\nnote: the function printed {printed} bytes in all (captured, not shown)")


def prepare_outputs(outputs: list[Path], inputs: Sequence[Path] = ()) -> None:
    from crosscheck.run.outputs import prepare

    prepare(outputs, inputs)


def _write_outputs(record: dict[str, Any], html: Path, source: str, record_path: Path | None = None) -> None:
    """The HTML report of `record` (and the record itself, at `record_path`), written as one unit
    (crosscheck.run.outputs.write_together): a concurrent run writing the same files leaves one run's pair."""
    from crosscheck.report.render import render_html
    from crosscheck.run import record as rec
    from crosscheck.run.outputs import write_together

    files = {} if record_path is None else {record_path: rec.dumps(record, str(record_path))}
    damaged = None
    try:
        files[html] = render_html(record)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # The schema does not pin every nested value; a record damaged inside one is refused, not a traceback.
        damaged = CrosscheckError(f"{source}: damaged record, cannot render it ({type(exc).__name__}: {exc})")
    try:
        write_together(files)  # the record, if any, is kept even when the report cannot be rendered
    except OSError as exc:
        raise CrosscheckError(f"{exc.filename or html}: cannot write: {exc.strerror or exc}") from None
    if damaged is not None:
        raise damaged


def cmd_report_render(args: argparse.Namespace) -> int:
    from crosscheck.run import record as rec

    out = args.output or args.record.with_suffix(".html")
    prepare_outputs([out], inputs=[args.record])
    record = rec.load(args.record)
    _write_outputs(record, out, str(args.record))
    print(f"report: {out}")
    return EXIT_OK


def cmd_report_merge(args: argparse.Namespace) -> int:
    from crosscheck.report.merge import incomplete_note, merge_records
    from crosscheck.run import record as rec

    paths = [Path(p) for p in args.records]
    seen: set[Path] = set()
    for p in paths:
        if p.resolve() in seen:
            raise CrosscheckError(f"{p}: given twice; each shard must be merged once")
        seen.add(p.resolve())
    prepare_outputs([args.output, *([args.json] if args.json else [])], inputs=paths)
    records = [rec.load(p) for p in paths]
    merged = merge_records(records, [str(p) for p in paths])
    _write_outputs(merged, args.output, ", ".join(map(str, paths)), record_path=args.json)
    print(f"merged {len(records)} records: {merged['summary']}\nreport: {args.output}")
    for g in merged["sharding"]:
        if g["complete"]:
            print(f"sharded run {g['plan']}: all {g['count']} shards present")
    note = incomplete_note(merged["sharding"])
    if note:
        # Still exit 0 with a report: a CI job that died must not also cost the report of the others.
        print(f"crosscheck: warning: incomplete sharded run: {note}", file=sys.stderr)
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from crosscheck.backends.registry import backend_names, expand
    from crosscheck.cli.explain import explain

    names = expand(args.backends) if args.backends else backend_names()
    text, agrees = explain(names, strict=bool(args.backends))
    print(text)
    return EXIT_OK if agrees else EXIT_MISMATCH


def cmd_backends(args: argparse.Namespace) -> int:
    from crosscheck.backends.base import BackendUnavailable
    from crosscheck.backends.registry import PORTED, all_backend_names
    from crosscheck.run.session import close_backends, load_backend

    for name in all_backend_names():
        try:
            # In a worker, like `run`: a plugin that crashes or hangs while loading is listed, not fatal.
            b = load_backend(name, isolation=not args.no_isolation, timeout=DEFAULT_TIMEOUT_S)
        except BackendUnavailable as exc:
            print(f"{name:<16} not installed: {exc}")
            continue
        try:
            _describe_backend(b)
            if name in PORTED:
                print(f"{'':<16} a ported path: not in a default run; `crosscheck run --backends ported` runs it")
        finally:
            close_backends([b])
    from crosscheck.core.hardware import cpu, machine_levels

    info = cpu()
    print(
        f"\nISA levels this machine runs (crosscheck run --isa): {', '.join(machine_levels())}"
        f" — CPU {info['model']} ({info['isa_class']}: {' '.join(info['features'])})"
    )
    return EXIT_OK


def _describe_backend(b: Backend) -> None:
    caps = b.capabilities()
    print(f"{b.name:<16} {b.framework} {b.version()}: {b.description}")
    print(f"{'':<16} devices {', '.join(b.devices)}; precision flags {b.precision_flags() or 'none'}")
    d = b.dispatch()
    print(f"{'':<16} kernels dispatch to {d.get('isa_class')} ({d.get('source')})")
    print(
        f"{'':<16} ranks {list(caps.ranks)}, dtypes {', '.join(caps.dtypes)}, padding {', '.join(caps.padding)},"
        f" layouts {', '.join(caps.layouts)}, groups {'yes' if caps.groups else 'no'}, bound {caps.bound}"
    )
    for feature, reason in caps.unsupported:
        print(f"{'':<16} unsupported: {feature}: {reason}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # SIGTERM and SIGHUP stop a command as Ctrl-C does, and a second signal cannot cut short the writing of
    # what the first one kept (crosscheck.run.signals) — nor, run as a program (no argv given), kill it on its way out.
    with signals.Interrupts(linger=argv is None):
        try:
            return int(args.func(args))
        except CrosscheckError as exc:
            print(f"crosscheck: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("crosscheck: interrupted", file=sys.stderr)
            return signals.exit_code()


if __name__ == "__main__":
    sys.exit(main())
