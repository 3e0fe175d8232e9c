"""The command line: the only layer that parses argv or prints.

`main` is the `crosscheck` console script's entry point (`crosscheck.cli:main`, as installed scripts name it).
"""

from crosscheck.cli.main import main

__all__ = ["main"]
