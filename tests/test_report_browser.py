"""The report as a person sees it: opened in headless Chromium (Debian's `chromium`, driven by Playwright).

Skipped with the reason when the browser or Playwright is missing, except where CROSSCHECK_REQUIRE_BROWSER
is set (CI installs both): there a missing browser fails instead of hiding the test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_support import Record, failing_record, passing_record

from crosscheck.report.render import write_report

SCREENSHOTS = Path(__file__).resolve().parents[1] / "reports" / "screenshots"
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
    assert "checks failed" in seen["text"] and "Minimal example" in seen["text"]
    assert seen["charts"] >= 1
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
