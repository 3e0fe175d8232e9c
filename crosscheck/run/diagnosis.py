"""What a failure message says about its cause, whatever the property that found it.

The runner uses it to tell a second bug in one property from the first one again; the report uses it to show
one card for a backend wrong in one way across many properties.
"""

from __future__ import annotations

import re

# Messages that name a cause independent of the property that found it: (pattern, the cause in words).
DIAGNOSES = (
    (r"Shape mismatch", "the output has the wrong shape"),
    (r"Dtype mismatch: expected (\w+), got (\w+)", "the output is {1}, not {0}"),
    (r"matches (SAME|SAME_LOWER|VALID)'s pads", "the padding follows {0}'s convention"),
    (r"backend raised (\w+)", "the backend raises {0}"),
    (r"inside the region of known finding ([\w.-]+)", "beyond known finding {0}'s contract"),
)


def diagnose(message: str, kind: str = "mismatch") -> str | None:
    """The cause `message` names (None: it names none, e.g. wrong values with nothing more to say)."""
    if kind in ("crash", "hang"):
        return "crashed" if kind == "crash" else "hung"
    for pattern, cause in DIAGNOSES:
        found = re.search(pattern, message)
        if found:
            return cause.format(*found.groups())
    return None
