"""The terminal summary of a run: at most 100 columns, reasons as footnotes, colour only for a terminal."""

from __future__ import annotations

import re

import wrong_convolutions as wc

from crosscheck.backends.function_backend import FunctionBackend
from crosscheck.cli.main import TABLE_WIDTH, summary_table
from crosscheck.run.session import RunOptions, run_backends

ESCAPES = re.compile(r"\x1b\[[0-9;]*m")


def test_the_summary_fits_100_columns_with_reasons_as_footnotes() -> None:
    backend = FunctionBackend(wc.correlate, "a[bracketed]-backend-with-a-rather-long-name", dtypes=("float64",))
    props = ["matches_reference", "gradient_input"]
    absent = {"name": "absent", "available": False, "reason": "a reason far longer than a row " * 8}
    record = run_backends([backend], [absent], props, RunOptions(max_examples=3, pairwise=False))
    for colour in (False, True):
        text = summary_table(record, colour=colour)
        assert ("\x1b[" in text) == colour
        plain = ESCAPES.sub("", text)
        assert max(len(line) for line in plain.splitlines()) <= TABLE_WIDTH
        assert "a[bracketed]-backend-with-a-rather-long-name" in plain  # brackets are text, not markup
    text = summary_table(record)
    assert "  matches_reference" in text and "unsupported [1]" in text and "not installed [2]" in text
    assert "\n[1] no autograd" in text and "\n[2] a reason far longer" in text
    assert text.rstrip().endswith("1 passed, 0 failed, 1 unsupported, 0 errors")


def test_a_small_problem_becomes_literal_arrays_that_need_only_numpy() -> None:
    import numpy as np

    from crosscheck import ConvSpec, make_problem
    from crosscheck.core.reproducer import standalone_problem_code

    for dtype in ("float64", "float32", "float16", "bfloat16", "int32", "complex64"):
        problem = make_problem(ConvSpec(2, 3, 2, (5, 4), (2, 3), dtype=dtype), seed=3)
        code = standalone_problem_code(problem)
        assert "crosscheck" not in code
        scope: dict[str, object] = {}
        exec(code, scope)
        rebuilt = scope["problem"]
        for name in ("x", "w"):
            got, want = getattr(rebuilt, name), getattr(problem, name)
            assert got.dtype == want.dtype and got.shape == want.shape, (dtype, name)
            assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (dtype, name)  # bit for bit
    big = make_problem(ConvSpec(4, 8, 8, (30, 30), (3, 3)), seed=0)
    assert "make_problem" in standalone_problem_code(big)  # too large to print: rebuilt from its seed
