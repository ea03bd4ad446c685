"""What every command shares: the one error path, the stderr console, the progress bar, shared options.

Library code raises VggtsError and reports progress through callbacks; only this package prints.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from enum import Enum
from typing import TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from vggts_cli.engines.learned import ADAPT_STEPS
from vggts_cli.errors import VggtsError, printable
from vggts_cli.weights import DEFAULT_MODEL

stderr = Console(stderr=True)
F = TypeVar("F", bound=Callable)

MODEL_HELP = (
    "For --engine vggts: a model file, vggt-s-lite (shipped) or vggt-s-1b (see `vggts weights`) "
    f"[default: {DEFAULT_MODEL}]."
)


ADAPT_HELP = (
    "For --engine vggts: steps of tuning the model to your masks before it propagates; 0: off "
    f"[default: {ADAPT_STEPS}]."
)


DETAIL_HELP = (
    "For --engine classic: fine works at up to each frame's full resolution where the object is small, "
    "for better masks of small and medium objects (about 1.5-2x the time) [default: normal]."
)


class Detail(str, Enum):
    """The classic engine's working size: fixed, or grown where the object is small."""

    normal = "normal"
    fine = "fine"


class Device(str, Enum):
    """Where the model runs; auto picks CUDA when there is one."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: a job unwinds as after Ctrl-C (partial outputs removed)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def say(text: str) -> None:
    """`vggts: <text>` on stderr, made printable (messages quote file names and manifest cells)."""
    print(f"vggts: {printable(text)}", file=sys.stderr)


def report(text: str) -> None:
    """A result line on the stderr console (rich colours its numbers), taken literally: made printable and
    never read as rich markup, so that a camera or folder named `[red]x` prints as such."""
    stderr.print(printable(text), markup=False)


def one_line_errors(fn: F) -> F:
    """Bad input gets one line on stderr and a non-zero exit code, never a traceback; SIGTERM is handled
    like Ctrl-C (one line, exit 143 instead of 130)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _raise_terminated) if main else None
        try:
            return fn(*args, **kwargs)
        except VggtsError as e:
            say(f"error: {e}")
            raise typer.Exit(e.exit_code) from None
        except BrokenPipeError:
            # The reader of our stdout went away (`vggts … --json | head`): nothing more to say to it.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(1) from None
        except KeyboardInterrupt as e:
            why, code = ("terminated", 143) if isinstance(e, Terminated) else ("interrupted", 130)
            say(f"{why}; rerun with --resume to continue")
            raise typer.Exit(code) from None
        except typer.Exit:
            raise
        except Exception as e:  # an unexpected failure: still one line, traceback on request
            if os.environ.get("VGGTS_DEBUG"):
                raise
            say(f"error: {type(e).__name__}: {e} (set VGGTS_DEBUG=1 for details)")
            raise typer.Exit(1) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper  # type: ignore[return-value]


def progress_bar(*columns: ProgressColumn) -> Progress:
    """A rich progress bar on stderr, silent when stderr is not a terminal; default columns: description,
    bar, done/total, time left."""
    return Progress(
        *(
            columns
            or (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        ),
        console=stderr,
        disable=not stderr.is_terminal,
        transient=False,
    )
