"""The `vggts` command line (Typer). Library code raises VggtsError; this file turns it into one line."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from vggts_cli import __version__
from vggts_cli.errors import UsageError, VggtsError

app = typer.Typer(
    name="vggts",
    help=(
        "Find one object in every frame of every camera of a synchronized multi-camera recording, from a "
        "single mask on one frame, and write masks (COCO RLE), overlay, redacted and matte videos."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stderr = Console(stderr=True)
F = TypeVar("F", bound=Callable)


def one_line_errors(fn: F) -> F:
    """Bad input gets one line on stderr and a non-zero exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VggtsError as e:
            print(f"vggts: error: {e}", file=sys.stderr)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            print("vggts: interrupted; rerun with --resume to continue", file=sys.stderr)
            raise typer.Exit(130) from None
        except Exception as e:  # an unexpected failure: still one line, traceback on request
            if os.environ.get("VGGTS_DEBUG"):
                raise
            print(f"vggts: error: {type(e).__name__}: {e} (set VGGTS_DEBUG=1 for details)", file=sys.stderr)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def progress_bar() -> Progress:
    """A rich progress bar on stderr, silent when stderr is not a terminal."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=not stderr.is_terminal,
        transient=False,
    )


class RedactMode(str, Enum):
    blur = "blur"
    pixelate = "pixelate"
    fill = "fill"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def parse_offsets(values: list[str]) -> tuple[tuple[str, float], ...]:
    """`exo=0.4` -> ("exo", 0.4); seconds added to every timestamp of that camera."""
    parsed = []
    for value in values:
        name, sep, seconds = value.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            parsed.append((name, float(seconds)))
        except ValueError:
            raise UsageError(f"--offset takes CAMERA=SECONDS (e.g. exo=0.4), got '{value}'") from None
    return tuple(parsed)


def version_callback(value: bool) -> None:
    if value:
        print(f"vggts {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """vggts: one mask in, the object in every frame of every camera out."""
