"""The isolation worker's command line (crosscheck.backends.isolated starts `python -c` with it): its pipe's file
descriptor, its parent's pid, and 1 if the parent's main thread started it."""

from __future__ import annotations

from crosscheck.backends.isolated import worker_main


def main(argv: list[str]) -> None:
    pipe_fd, parent, main_thread = argv
    worker_main(int(pipe_fd), int(parent), main_thread == "1")
