"""The JSON record of a run: versioned, validated against its schema on write and on read."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from crosscheck.core.errors import CrosscheckError
from crosscheck.run.outputs import write_atomic

SCHEMA_VERSION = 1
# Limits of a record read back: a real one nests about 10 levels and weighs a few MB (every ISA level of every
# backend: 1.4 MB). Beyond them, rendering or merging would exhaust the recursion limit or the memory.
MAX_DEPTH = 64
MAX_RECORD_BYTES = 256 * 2**20

# What a replayed known finding showed in a run (crosscheck.run.findings); the first three fail the run.
FINDING_OUTCOMES = (
    "stale",
    "beyond its contract",
    "fails differently",
    "reproduced",
    "not reproduced here",
    "not applicable",
    "pinned by a test",
    "no example",
)
FAILING_OUTCOMES = FINDING_OUTCOMES[:3]  # the data file (or the adapter) no longer describes this environment

# "skipped": not run because the backend already crashed or hung (or, in verify, failed) in another property.
_STATUS = {"enum": ["passed", "failed", "unsupported", "error", "interrupted", "expected_failure", "skipped"]}
_NUM = {"type": ["number", "null"]}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "crosscheck record",
    "type": "object",
    "required": ["schema", "schema_version", "tool", "run", "environment", "backends", "results", "summary"],
    "properties": {
        "schema": {"const": "crosscheck-record"},
        "schema_version": {"const": SCHEMA_VERSION},
        "tool": {"type": "object", "required": ["name", "version"]},
        "run": {
            "type": "object",
            "required": ["started", "finished", "duration_s", "profile", "seed", "max_examples", "interrupted"],
            "properties": {
                "profile": {"type": "string"},
                "seed": {"type": ["integer", "null"]},
                "max_examples": {"type": ["integer", "null"]},
                "interrupted": {"type": "boolean"},
                "duration_s": {"type": "number"},
                # Optional (records before crosscheck.backends.isolated lack them).
                "isolation": {
                    "type": "object",
                    "properties": {"enabled": {"type": "boolean"}, "timeout_s": _NUM},
                },
                # Optional: which shard of a sharded run this record is (crosscheck run --shard I/N), and
                # the digest of the plan the shards split (crosscheck.run.sharding).
                "shard": {"type": "string", "pattern": "^[1-9][0-9]*/[1-9][0-9]*$"},
                "shard_plan": {"type": "string"},
                # Optional (records before crosscheck.strategies.realistic lack it): where problems came from.
                "shapes": {
                    "type": "object",
                    "required": ["profile", "max_macs"],
                    "properties": {"profile": {"enum": ["default", "realistic"]}, "max_macs": {"type": "integer"}},
                },
                "verify": {
                    "type": "object",
                    "required": ["target"],
                    "properties": {"target": {"type": "string"}, "dtype": {"type": "string"}},
                },
            },
        },
        "environment": {"type": "object", "required": ["python", "platform", "packages"]},
        "backends": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "available"],
                "properties": {
                    "name": {"type": "string"},
                    "available": {"type": "boolean"},
                    "reason": {"type": ["string", "null"]},
                    "capabilities": {"type": "object"},
                    "isolation": {"type": "object"},
                },
            },
        },
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["backend", "property", "status", "examples", "by_dtype", "failures"],
                "properties": {
                    "backend": {"type": "string"},
                    "property": {"type": "string"},
                    "status": _STATUS,
                    "reason": {"type": ["string", "null"]},
                    "examples": {"type": "integer", "minimum": 0},
                    "duration_s": {"type": "number"},
                    "examples_per_second": _NUM,
                    # Optional: examples the backend declined (NotImplementedError), and the example on
                    # which the first failure showed.
                    "unsupported_examples": {"type": "integer", "minimum": 0},
                    "unsupported_reasons": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "caught_at": {"type": ["integer", "null"]},
                    "by_dtype": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "required": ["examples", "max_ratio", "histogram"],
                            "properties": {"max_ratio": _NUM, "max_ulp": _NUM},
                        },
                    },
                    # Optional: precision mode -> dtype -> the same statistics as by_dtype (property
                    # precision_modes; absent in older records).
                    "by_mode": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "additionalProperties": {"type": "object", "required": ["examples", "max_ratio"]},
                        },
                    },
                    "known_findings": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "explanation", "reproduced"],
                            "properties": {
                                # Optional (absent in older records): what the replay and the region's random
                                # examples showed here.
                                "outcome": {"enum": list(FINDING_OUTCOMES)},
                                "region_examples": {
                                    "type": "object",
                                    "properties": {
                                        "failed": {"type": "integer", "minimum": 0},
                                        "passed": {"type": "integer", "minimum": 0},
                                    },
                                },
                            },
                        },
                    },
                    "failures": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["message", "problem", "reproducer"],
                            "properties": {
                                "message": {"type": "string"},
                                "reproducer": {"type": "string"},
                                # Optional: what went wrong (absent in older records: a mismatch); "stale": a
                                # known finding stopped reproducing where it was recorded; "flaky": a failure
                                # that did not repeat when Hypothesis reran it.
                                "kind": {"enum": ["mismatch", "exception", "crash", "hang", "stale", "flaky"]},
                                # Optional: what it means for the run (crosscheck.run.runner.triage).
                                "triage": {"enum": ["new discrepancy", "stale finding", "crash", "hang"]},
                            },
                        },
                    },
                },
            },
        },
        "pairwise": {
            "type": ["object", "null"],
            "required": ["backends", "status", "examples", "matrix", "failures"],
            "properties": {
                "status": _STATUS,
                "matrix": {
                    "type": "array",
                    "items": {"type": "object", "required": ["a", "b", "examples", "max_ratio"]},
                },
            },
        },
        # Optional (records before crosscheck.strategies.coverage lack it): backend -> its feature-combination coverage.
        "coverage": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["examples", "pairs", "triples"],
                "properties": {
                    "pairs": {"type": "object", "required": ["covered", "total"]},
                    "triples": {"type": "object", "required": ["covered", "total"]},
                },
            },
        },
        "summary": {
            "type": "object",
            "required": ["passed", "failed", "unsupported", "error"],
            "additionalProperties": {"type": "integer"},
        },
    },
}


def validate(record: dict[str, Any], source: str = "record") -> None:
    """Raise CrosscheckError (one line) unless `record` is a valid record of our schema version."""
    import jsonschema

    version = record.get("schema_version") if isinstance(record, dict) else None
    if isinstance(record, dict) and record.get("schema") == "crosscheck-record" and version != SCHEMA_VERSION:
        raise CrosscheckError(
            f"{source}: schema version {version!r} is not supported (this crosscheck reads version {SCHEMA_VERSION})"
        )
    try:
        jsonschema.validate(record, SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise CrosscheckError(f"{source}: not a valid crosscheck record at {where}: {exc.message}") from None


def summarize(results: list[dict[str, Any]], pairwise: dict[str, Any] | None = None) -> dict[str, int]:
    out = {"passed": 0, "failed": 0, "unsupported": 0, "error": 0}
    for r in results:
        out[r["status"]] = out.get(r["status"], 0) + 1
    if pairwise and pairwise["status"] in out:
        out[pairwise["status"]] += 1
    return out


def dumps(record: dict[str, Any], source: str = "record") -> str:
    """The record's JSON text, validated first."""
    validate(record, source)
    return json.dumps(_finite(record), indent=1, allow_nan=False, default=_jsonable) + "\n"


def write(record: dict[str, Any], path: Path) -> None:
    """Validate and write `record` to `path`, atomically (crosscheck.run.outputs.write_atomic). Raises OSError."""
    write_atomic(path, dumps(record, str(path)))


def load(path: Path) -> dict[str, Any]:
    """The record at `path`, validated; CrosscheckError (one line) for one that is unreadable, damaged, larger
    than MAX_RECORD_BYTES or nested deeper than MAX_DEPTH."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_RECORD_BYTES + 1)  # bounded: a FIFO or /dev/zero has no size to check first
        text = data.decode("utf-8")
    except OSError as exc:
        raise CrosscheckError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CrosscheckError(f"{path}: damaged record (not UTF-8 text)") from None
    if len(data) > MAX_RECORD_BYTES:
        raise CrosscheckError(f"{path}: larger than a record may be ({MAX_RECORD_BYTES // 2**20} MiB); not read")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CrosscheckError(f"{path}: damaged record (not JSON: {exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        record = _TOO_DEEP
    if record is _TOO_DEEP or _deeper_than(record, MAX_DEPTH):
        raise CrosscheckError(f"{path}: damaged record (nested deeper than {MAX_DEPTH} levels)")
    validate(record, str(path))
    return dict(record)


_TOO_DEEP = object()


def _deeper_than(obj: Any, limit: int) -> bool:
    """Whether `obj` nests lists and objects more than `limit` levels deep (iteratively: no recursion limit)."""
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _finite(obj: Any) -> Any:
    """JSON has no inf or NaN: such statistics are written as null rather than losing the record."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _jsonable(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
