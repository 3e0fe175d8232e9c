"""The HTML report: one self-contained file rendered from records only (it never recomputes).

- `merge`: records (one, or the shards of a CI matrix) into one record-shaped view;
- `model`: what the template shows (verdict matrix, distributions, failures), as plain data;
- `charts`: the error-to-bound distributions, drawn by matplotlib into inline SVG;
- `render`: Jinja2 (autoescaped) over the templates shipped in `templates/`.

Jinja2 and matplotlib load only when a report is rendered, so `import crosscheck` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crosscheck.report.merge import merge_records
    from crosscheck.report.render import render_html, write_report

_LAZY = {
    "merge_records": "crosscheck.report.merge",
    "render_html": "crosscheck.report.render",
    "write_report": "crosscheck.report.render",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'crosscheck.report' has no attribute {name!r}")


__all__ = ["merge_records", "render_html", "write_report"]
