"""The checks: a result held against the reference under the error model, and the failure message."""
