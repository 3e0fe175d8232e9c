"""A verify target's output: captured (never flooding the terminal), bounded, shown with its failure."""

from __future__ import annotations

from pathlib import Path

import pytest
from process_support import TESTS, Crosscheck

from crosscheck.backends.isolated import OUTPUT_TAIL

CHATTY = f"{TESTS / 'verify_targets' / 'chatty.py'}"
FLOOD_PER_CALL = 1024 * 1024 + len("last words of this call\n")


def _verify(function: str, tmp_path: Path) -> tuple[int, str, str]:
    cc = Crosscheck(["verify", f"{CHATTY}:{function}", "--dims", "1", "--max-examples", "5", "--seed", "1"])
    try:
        return cc.finish(timeout=300)
    finally:
        cc.kill()


@pytest.mark.parametrize("function", ["wrong", "crashes"])
def test_a_failing_target_shows_the_end_of_its_output(function: str, tmp_path: Path) -> None:
    code, out, err = _verify(function, tmp_path)
    assert code == 1, out + err
    assert "Traceback" not in err
    assert len(out) + len(err) < 100_000  # megabytes printed, a few kB shown
    assert "last words of this call" in out
    assert f"the last {OUTPUT_TAIL} of {FLOOD_PER_CALL} bytes" in out


def test_a_passing_target_says_how_much_it_printed(tmp_path: Path) -> None:
    code, out, err = _verify("right", tmp_path)
    assert code == 0, out + err
    assert len(out) + len(err) < 100_000
    printed = int(out.split("note: the function printed ")[1].split()[0])
    assert printed >= 5 * FLOOD_PER_CALL and printed % FLOOD_PER_CALL == 0  # every byte counted, none shown
