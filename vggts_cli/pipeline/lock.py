"""One job per output folder at a time: an exclusive `flock` on OUT/.vggts/lock, held for the job's life.

The holder writes who it is (pid, host, start time) into the lock file, so a second job on the same `--out`
fails at once with one line naming it. The kernel drops the lock when the holder's process ends, however
it ends (SIGKILL included), so a killed job never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from vggts_cli.errors import VggtsError

LOCK_NAME = "lock"


class JobLockedError(VggtsError):
    """Another job holds the output folder."""


def _holder(path: Path) -> str:
    """The holder's line in the lock file, or a placeholder while it is still being written."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "a job that is starting"


def _locked(out: Path, path: Path) -> JobLockedError:
    return JobLockedError(
        f"{out} is in use by another vggts job ({_holder(path)}); wait for it or choose another --out"
    )


def check_unlocked(out: Path, state_dir: Path) -> None:
    """Raise JobLockedError if a live job holds `state_dir`'s lock; creates nothing."""
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # no lock file: no job has ever held this folder
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _locked(out, path) from None
    finally:
        os.close(fd)


class JobLock:
    """The exclusive lock of one output folder; a context manager (released on exit)."""

    def __init__(self, out: Path, state_dir: Path) -> None:
        self.out = out
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and record the holder, or raise JobLockedError at once."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _locked(self.out, self.path) from None
        self._fd = fd
        started = time.strftime("%Y-%m-%d %H:%M:%S %z")
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n".encode())
        except BaseException:
            self.release()  # a full disk: no lock held by a job that never started
            raise

    def release(self) -> None:
        """Drop the lock (the holder line stays; an unlocked file means no job is running)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> JobLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
