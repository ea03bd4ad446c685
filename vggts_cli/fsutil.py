"""Atomic outputs: everything is written under a temporary name and renamed when complete."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


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
