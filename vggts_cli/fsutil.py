"""Atomic outputs: everything is written under a temporary name and renamed when complete; and the one
report of a write the disk refused (full, read-only, not allowed)."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from vggts_cli.errors import UsageError, VggtsError

_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_REFUSED = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def not_a_file(path: Path) -> str:
    """Why `path`, which is not a regular file, cannot be read as one: a folder, or nothing there."""
    return "is a folder, not a file" if path.is_dir() else "no such file"


def check_folder(folder: Path, option: str = "--out") -> None:
    """Raise UsageError if a file stands at `folder` or above it, where a folder must be (or be made)."""
    for path in (folder, *folder.parents):
        if path.is_dir():
            return
        if os.path.lexists(path):
            what = "is a file, not a folder" if path == folder else f"is inside {path}, which is a file"
            raise UsageError(f"{folder}: {option} {what}")


def disk_refused(err: BaseException) -> bool:
    """Whether `err` is the disk refusing a write (full, over quota, read-only, not allowed) rather than
    anything about the job; code that rewords errors passes these on for `writing_under` to report."""
    return isinstance(err, OSError) and err.errno in _FULL | _REFUSED


@contextmanager
def naming(path: Path) -> Iterator[None]:
    """An OSError from the block that names no file (a write to an open file) gets `path` as its file."""
    try:
        yield
    except OSError as err:
        if err.filename is None:
            err.filename = str(path)
        raise


@contextmanager
def writing_under(folder: Path, kept: str) -> Iterator[None]:
    """Report a write under `folder` that the disk refused (`disk_refused`) as one VggtsError: the folder,
    why, the file when the error names one and, after a full disk, `kept` (what is left of the work)."""
    try:
        yield
    except OSError as err:
        if not disk_refused(err):
            raise
        reason = os.strerror(err.errno)
        reason = reason[:1].lower() + reason[1:]
        if err.errno in _REFUSED:
            raise VggtsError(f"{folder}: cannot write there ({reason})") from None
        what = ""
        if err.filename is not None:
            path = final_path(Path(os.fsdecode(err.filename)))
            what = f" while writing {path.relative_to(folder) if path.is_relative_to(folder) else path}"
        raise VggtsError(f"{folder}: {reason}{what}; {kept}") from None


def partial_path(final: Path) -> Path:
    """The temporary name for `final` while it is being written: `overlay.mp4` -> `overlay.part.mp4`.

    The suffix is kept so that container formats can still be guessed from the name.
    """
    return final.with_name(f"{final.stem}.part{final.suffix}")


def final_path(path: Path) -> Path:
    """The final name of a partial output (the inverse of `partial_path`); any other path as it is."""
    if path.suffix == ".part":  # a folder: masks.part
        return path.with_suffix("")
    stem = Path(path.stem)
    return path.with_name(stem.stem + path.suffix) if stem.suffix == ".part" else path


def commit(partial: Path, final: Path) -> None:
    """Move a finished file or folder to its final name, replacing an older complete one."""
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    os.replace(partial, final)


def discard(partial: Path) -> None:
    """Remove an unfinished output (file or folder); a missing one is fine."""
    if partial.is_dir() and not partial.is_symlink():
        shutil.rmtree(partial, ignore_errors=True)
    else:
        partial.unlink(missing_ok=True)


class PartialOutput:
    """One output written under its partial name (`path`) and moved to `final` by `commit`.

    As a context manager it yields the partial path, commits when the block ends and discards the partial
    file on any error (a kill between the two leaves only a `*.part.*` name, never a truncated output).
    Streaming writers call `commit` / `discard` themselves. `fresh=True` first removes a partial output
    left over from an interrupted run.
    """

    def __init__(self, final: Path, fresh: bool = False) -> None:
        self.final = Path(final)
        self.path = partial_path(self.final)
        if fresh:
            discard(self.path)

    def commit(self) -> None:
        try:
            commit(self.path, self.final)
        except BaseException:
            discard(self.path)
            raise

    def discard(self) -> None:
        discard(self.path)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def write_text(final: Path, text: str) -> None:
    """Write `final` (UTF-8) under its partial name and rename it when complete."""
    with PartialOutput(final) as partial, naming(final):
        partial.write_text(text, encoding="utf-8")


def unique_names(names: Sequence[str]) -> list[str]:
    """Names made unique in order, for output folders and objects: ego, exo, exo-2, …"""
    unique: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in unique:
            n += 1
            candidate = f"{name}-{n}"
        unique.append(candidate)
    return unique
