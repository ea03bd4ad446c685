"""Atomic outputs: everything is written under a temporary name and renamed when complete."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path


def not_a_file(path: Path) -> str:
    """Why `path`, which is not a regular file, cannot be read as one: a folder, or nothing there."""
    return "is a folder, not a file" if path.is_dir() else "no such file"


def partial_path(final: Path) -> Path:
    """The temporary name for `final` while it is being written: `overlay.mp4` -> `overlay.part.mp4`.

    The suffix is kept so that container formats can still be guessed from the name.
    """
    return final.with_name(f"{final.stem}.part{final.suffix}")


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
    with PartialOutput(final) as partial:
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
