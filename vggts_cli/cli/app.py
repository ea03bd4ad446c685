"""The `vggts` application: imports every command module and adds its commands (never the reverse)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer.exceptions import TyperException

from vggts_cli import __version__
from vggts_cli.cli import batch, bench, propagate, train, weights
from vggts_cli.cli import eval as evaluate

app = typer.Typer(
    name="vggts",
    help=(
        "Find one object in every frame of every camera of a synchronized multi-camera recording, from a "
        "single mask on one frame, and write masks (COCO RLE), overlay, redacted and matte videos."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


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


app.command(no_args_is_help=True)(propagate.propagate)
app.add_typer(weights.app, name="weights")
app.command()(bench.bench)
app.command(no_args_is_help=True)(batch.batch)
app.add_typer(evaluate.app, name="eval")
app.command()(train.train)


# Click's errors, which Typer vendors: it exports only BadParameter, whose base is Click's UsageError.
UsageError = typer.BadParameter.__base__


def main() -> None:
    """Console-script entry point: Click's usage errors become one line on stderr (exit 2), like ours."""
    try:
        code = app(prog_name="vggts", standalone_mode=False)
    except TyperException as e:
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError":  # a bare command: its help, as --help prints it
            print(e.format_message(), file=sys.stderr)
        else:
            where = f" (see '{ctx.command_path} --help')" if isinstance(e, UsageError) and ctx else ""
            print(f"vggts: error: {e.format_message().rstrip('.')}{where}", file=sys.stderr)
        sys.exit(e.exit_code)
    except typer.Abort:
        print("vggts: aborted", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
