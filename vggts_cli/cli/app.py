"""The `vggts` application: imports every command module and adds its commands (never the reverse)."""

from __future__ import annotations

from typing import Annotated

import typer

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


def main() -> None:
    """Console-script entry point."""
    app()
