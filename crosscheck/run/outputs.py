"""Where crosscheck writes: output paths checked before any work, files replaced atomically.

A run may take an hour; an output that cannot be written must be refused before it starts, not after
(`prepare`): its folder is created, proven writable with a throw-away file, and an output that is one of
the command's inputs (`report render X.json -o X.json`) is refused rather than overwritten.

Each file is written to a temporary file with a unique name in its own folder and renamed over the
target (`write_atomic`): a reader sees the old file or the new one, never half of one, and a failed write
leaves no temporary file behind. Files written together (a record and its HTML report) are replaced under
an exclusive lock on their folder (`write_together`), so two runs sharing an output folder leave the pair
of one of them, never the JSON of one and the HTML of the other.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from crosscheck.core.errors import CrosscheckError


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def prepare(outputs: Sequence[Path], inputs: Sequence[Path] = ()) -> None:
    """Check that every path of `outputs` can be written, before any work: none is one of `inputs` or another
    output, none is a folder, and each one's folder exists (created here) and takes a new file. Raises
    CrosscheckError (one line) naming the path and why."""
    for i, out in enumerate(outputs):
        for source in inputs:
            if _same_file(out, source):
                raise CrosscheckError(f"{out}: this output is the input {source}; it would be overwritten")
        for other in outputs[:i]:
            if _same_file(out, other):
                raise CrosscheckError(f"{out}: given as two different outputs; each needs its own file")
        if out.is_dir():
            raise CrosscheckError(f"{out}: is a folder, cannot write a file there")
        folder = out.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise CrosscheckError(f"{folder}: is not a folder, cannot write {out.name} in it") from None
        except OSError as exc:
            raise CrosscheckError(f"{folder}: cannot create the output folder: {_why(exc)}") from None
        try:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{out.name}.", suffix=".probe")
        except OSError as exc:
            raise CrosscheckError(f"{out}: cannot write in {folder}: {_why(exc)}") from None
        os.close(fd)
        os.unlink(probe)


@functools.cache
def _mode() -> int:
    # mkstemp creates 0600 files; an output gets the mode any new file would get (0666 less the umask).
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` by a file holding `text`, atomically: written under a unique temporary name in the same
    folder (so that the rename cannot cross file systems), then renamed over `path`. On any failure, or an
    interrupt, the temporary file is removed and `path` is left as it was. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, _mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock on `folder` itself (no lock file to leave behind), held for the block."""
    if sys.platform == "win32":  # no advisory locks there; the atomic renames still hold
        yield
        return
    import fcntl

    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_together(files: Mapping[Path, str]) -> None:
    """Write every file of `files` (path -> text) atomically, as one unit: under the locks of their folders, so
    that runs writing the same paths at the same time leave every file from the same run. Raises OSError."""
    folders = sorted({p.parent.resolve() for p in files})
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        for folder in folders:  # always in the same order: two writers cannot deadlock
            stack.enter_context(folder_lock(folder))
        for path, text in files.items():
            write_atomic(path, text)
