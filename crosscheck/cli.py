"""The `crosscheck` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from crosscheck.errors import CrosscheckError

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


def build_parser() -> argparse.ArgumentParser:
    from crosscheck.profiles import PROFILES

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
    run.set_defaults(func=cmd_run)

    backends = sub.add_parser("backends", help="list backends, versions and capabilities")
    backends.set_defaults(func=cmd_backends)
    return parser


def _version() -> str:
    from crosscheck import __version__

    return f"crosscheck {__version__}"


def _print_progress(backend: str, prop: str, examples: int, failures: int) -> None:
    if failures:
        print(f"\r  {backend:<16} {prop:<22} FAILED after {examples} examples, shrinking done", file=sys.stderr)
    elif sys.stderr.isatty():
        print(f"\r  {backend:<16} {prop:<22} {examples:>5} examples", end="", file=sys.stderr, flush=True)


def summary_table(record: dict[str, Any]) -> str:
    rows = [("backend", "property", "status", "examples", "ex/s", "max err/bound by dtype")]
    for r in record["results"]:
        ratios = ", ".join(f"{d} {s['max_ratio']:.3g}" for d, s in r["by_dtype"].items() if s["examples"])
        status = r["status"] if not r.get("reason") else f"{r['status']} ({r['reason']})"
        eps = r.get("examples_per_second")
        rows.append((r["backend"], r["property"], status, str(r["examples"]), f"{eps:.0f}" if eps else "-", ratios))
    for b in record["backends"]:
        if not b["available"]:
            rows.append((b["name"], "-", "not installed", "0", "-", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows]
    pw = record.get("pairwise")
    if pw:
        worst = max((m["max_ratio"] for m in pw["matrix"]), default=0.0)
        lines.append(
            f"\npairwise agreement: {pw['status']}, {pw['examples']} examples, {len(pw['matrix'])} pairs, "
            f"largest |a - b| / (bound_a + bound_b) {worst:.3g}"
        )
        for f in pw["failures"]:
            lines.append(f"  {f['message']}")
    s = record["summary"]
    lines.append(f"\n{s['passed']} passed, {s['failed']} failed, {s['unsupported']} unsupported, {s['error']} errors")
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    from crosscheck import record as rec
    from crosscheck.profiles import default_profile
    from crosscheck.session import RunOptions, run

    options = RunOptions(
        backends=args.backends,
        properties=args.properties,
        profile=args.profile or default_profile(),
        max_examples=args.max_examples,
        seed=args.seed,
        device=args.device,
        pairwise=not args.no_pairwise,
        command=["crosscheck", *sys.argv[1:]],
    )
    record = run(options, progress=_print_progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    path = args.out / "crosscheck.json"
    rec.write(record, path)
    print(summary_table(record))
    for r in record["results"]:
        for f in r["failures"]:
            print(f"\n--- {r['backend']} / {r['property']} ---\n{f['message']}\n\nReproduce with:\n{f['reproducer']}")
    print(f"\nrecord: {path}")
    if record["run"]["interrupted"]:
        print("interrupted: the record holds what finished", file=sys.stderr)
        return 130
    bad = record["summary"]["failed"] + record["summary"]["error"]
    return EXIT_MISMATCH if bad else EXIT_OK


def cmd_backends(args: argparse.Namespace) -> int:
    from crosscheck.backends.base import BackendUnavailable
    from crosscheck.backends.registry import backend_names, get_backend

    for name in backend_names():
        try:
            b = get_backend(name)
        except BackendUnavailable as exc:
            print(f"{name:<16} not installed: {exc}")
            continue
        caps = b.capabilities()
        print(f"{name:<16} {b.framework} {b.version()} on {b.device}: {b.description}")
        print(
            f"{'':<16} ranks {list(caps.ranks)}, dtypes {', '.join(caps.dtypes)}, padding {', '.join(caps.padding)},"
            f" layouts {', '.join(caps.layouts)}, groups {'yes' if caps.groups else 'no'}, bound {caps.bound}"
        )
        for feature, reason in caps.unsupported:
            print(f"{'':<16} unsupported: {feature}: {reason}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CrosscheckError as exc:
        print(f"crosscheck: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
