"""The report as a person sees it: opened in headless Chromium (Debian's `chromium`, driven by Playwright).

Skipped with the reason when the browser or Playwright is missing, except where CROSSCHECK_REQUIRE_BROWSER
is set (CI installs both): there a missing browser fails instead of hiding the test.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_support import Record, failing_record, passing_record

from crosscheck.report.render import write_report

SCREENSHOTS = Path(__file__).resolve().parents[2] / "reports" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium() -> str | None:
    for candidate in (os.environ.get("CROSSCHECK_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if _chromium() is None:
        return "Chromium is not installed (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason:
        if os.environ.get("CROSSCHECK_REQUIRE_BROWSER"):
            pytest.fail(f"CROSSCHECK_REQUIRE_BROWSER is set but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser: Any, html: Path, screenshot: Path) -> dict[str, Any]:
    """Load the report; return its text, console errors, requests and whether injected script ran."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(html.as_uri(), wait_until="load")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    # Written beside its final name, then renamed: pytest-xdist workers, or two test runs at once, never
    # leave a half-written screenshot in the shared reports/ folder.
    partial = screenshot.with_name(f".{screenshot.stem}.{os.getpid()}.partial.png")
    page.screenshot(path=str(partial), full_page=True)
    partial.replace(screenshot)
    seen = {
        "text": page.inner_text("body"),
        "title": page.title(),
        "errors": errors,
        "requests": [u for u in requests if u != html.as_uri()],
        "xss": page.evaluate("window.__xss === undefined ? null : window.__xss"),
        "charts": page.locator("figure svg").count(),
        # Wide tables scroll inside their own box: the page itself never scrolls sideways.
        "overflow": page.evaluate("document.documentElement.scrollWidth - window.innerWidth"),
    }
    page.close()
    return seen


@pytest.fixture(scope="module")
def failing() -> Record:
    return failing_record()


def test_report_with_failures_renders_offline_and_escapes_error_text(
    browser: Any, failing: Record, tmp_path: Path
) -> None:
    html = tmp_path / "crosscheck.html"
    write_report(failing, html)
    seen = _open(browser, html, SCREENSHOTS / "report-failures.png")
    assert seen["errors"] == []
    assert seen["requests"] == [], "the report made a network request"
    assert seen["xss"] is None, "script text from an error message ran"
    assert "<script>window.__xss = 1" in seen["text"]  # shown as text instead
    for b in failing["backends"]:
        assert b["name"] in seen["text"]
    assert "checks failed" in seen["text"] and "Message, minimal example and how to reproduce" in seen["text"]
    assert seen["charts"] >= 1
    assert seen["overflow"] <= 0
    assert (SCREENSHOTS / "report-failures.png").stat().st_size > 10_000


def test_passing_numpy_scipy_report_shows_each_backend(browser: Any, tmp_path: Path) -> None:
    record = passing_record(backends=("numpy", "scipy"))
    html = tmp_path / "crosscheck.html"
    write_report(record, html)
    seen = _open(browser, html, SCREENSHOTS / "report-numpy-scipy.png")
    assert seen["errors"] == [] and seen["requests"] == []
    assert "all checks hold" in seen["title"]
    for name in ("numpy", "scipy.correlate", "scipy.convolve", "scipy.ndimage", "scipy.fft"):
        assert name in seen["text"]
    assert "Every check holds" in seen["text"] and "Pairwise agreement" in seen["text"]
    assert seen["overflow"] <= 0


def _triage_record(failing: Record) -> Record:
    """Issue 16's first-screen case: 2 new discrepancies, 1 stale finding, 1 crash and 10 known findings."""
    from crosscheck.run.findings import known_findings
    from crosscheck.run.record import summarize

    record = copy.deepcopy(failing)
    new = [r for r in record["results"] if r["failures"]]
    for r in new[:2]:  # keep two new discrepancies (each property may have found several distinct bugs)
        del r["failures"][1:]
    for r in new[2:]:
        r["status"], r["failures"] = "passed", []
    numpy = [r for r in record["results"] if r["backend"] == "numpy"]
    stale, crash = numpy[0], numpy[1]
    stale["status"] = crash["status"] = "failed"
    stale["failures"] = [
        {
            "message": "known finding numpy-imaginary-bug no longer reproduces on numpy 2.4.6 with avx512 kernels",
            "problem": {},
            "reproducer": "# known finding numpy-imaginary-bug\nfrom crosscheck import ConvSpec",
            "kind": "stale",
            "triage": "stale finding",
        }
    ]
    crash["failures"] = [
        {
            "message": "numpy crashed: its worker process was killed by SIGSEGV while running the problem",
            "problem": {},
            "reproducer": "from crosscheck import ConvSpec",
            "kind": "crash",
            "triage": "crash",
        }
    ]
    numpy[2]["known_findings"] = [
        {"id": f["id"], "explanation": f["explanation"], "reproduced": True, "outcome": "reproduced"}
        for f in known_findings()[:10]
    ]
    if record.get("pairwise"):  # the broken backend's disagreements would be a fifth card
        record["pairwise"]["failures"], record["pairwise"]["status"] = [], "passed"
    record["summary"] = summarize(record["results"], record.get("pairwise"))
    return record


def test_the_first_screen_is_the_verdict_and_what_to_look_at(browser: Any, failing: Record, tmp_path: Path) -> None:
    html = tmp_path / "crosscheck.html"
    write_report(_triage_record(failing), html)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: requests.append(r.url))
    page.goto(html.as_uri(), wait_until="load")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    partial = SCREENSHOTS / f".report-first-screen.{os.getpid()}.partial.png"
    page.screenshot(path=str(partial))  # the first screen only, as a person sees it
    partial.replace(SCREENSHOTS / "report-first-screen.png")

    def bottom(selector: str) -> float:
        box = page.locator(selector).bounding_box()
        assert box is not None, selector
        return float(box["y"] + box["height"])

    assert bottom("#verdict") < 900
    cards = page.locator("section.failure")
    assert cards.count() == 4
    for i in range(4):
        card = cards.nth(i)
        for part in ("h3", ".what"):
            box = card.locator(part).bounding_box()
            assert box is not None and box["y"] + box["height"] < 900, (i, part, box)
    triages = page.locator("section.failure h3").all_inner_texts()
    assert sum("new discrepancy" in t for t in triages) == 2
    assert any("stale finding" in t for t in triages) and any("crashed" in t for t in triages)
    # One count everywhere: the banner, the navigation and the cards.
    body = page.inner_text("body")
    assert "4 root causes below" in body and "Failures (4)" in body
    assert "Known findings (10)" in body
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400  # no horizontal overflow
    assert errors == [] and [u for u in requests if u != html.as_uri()] == []
    page.close()


def test_the_matrix_fits_1400_px_and_opens_only_the_backends_that_failed(
    browser: Any, failing: Record, tmp_path: Path
) -> None:
    html = tmp_path / "crosscheck.html"
    write_report(failing, html)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(html.as_uri(), wait_until="load")
    opened = page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('details.backend-rows')]"
        ".map(d => [d.dataset.backend, d.open]))"
    )
    assert opened == {"broken": True, "numpy": False}
    page.evaluate("() => document.querySelectorAll('details.backend-rows').forEach(d => d.open = true)")
    # Every dtype column (numpy brings all eight) and the counts fit: nothing scrolls, nothing is clipped.
    widths = page.evaluate(
        "() => [...document.querySelectorAll('table.matrix')].map(t => [t.getBoundingClientRect().right,"
        " [...t.querySelectorAll('th')].filter(h => h.scrollWidth > h.clientWidth).map(h => h.textContent)])"
    )
    assert len(widths) == 2
    for right, clipped in widths:
        assert right <= 1400 and clipped == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    page.close()
