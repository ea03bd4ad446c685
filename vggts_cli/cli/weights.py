"""`vggts weights ...`: download, list, verify and locate the pretrained weight files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from huggingface_hub import constants
from rich.filesize import decimal
from rich.progress import BarColumn, DownloadColumn, TaskID, TextColumn, TransferSpeedColumn

from vggts_cli.cli.common import one_line_errors, progress_bar
from vggts_cli.errors import VggtsError, printable
from vggts_cli.model import hub
from vggts_cli.weights import DEFAULT_MODEL, shipped_model_path

app = typer.Typer(
    help=(
        "Download, list, verify and locate the pretrained weights (the VGGT-1B backbone and the VGGT-S "
        "head). Files go into the Hugging Face cache (HF_HOME / HF_HUB_CACHE; HF_HUB_OFFLINE=1 never "
        "touches the network). Start with `vggts weights list`."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)

_NAMES = ", ".join(hub.WEIGHTS)


@contextmanager
def _hash_bar() -> Iterator[hub.HashProgressFn]:
    """A transient stderr bar for hashing a weight file, as the callback `hub` reports through."""
    name_column = TextColumn("sha256 {task.description}", markup=False)  # a file's name, taken literally
    columns = (name_column, BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with progress_bar(*columns) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(name: str, n: int, size: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(printable(name), total=size)
            bar.advance(tasks[name], n)

        yield advance


def _require_local(name: str) -> Path:
    path = hub.local_path(name)
    if path is None:
        raise VggtsError(
            f"{name} is not downloaded (Hugging Face cache {hub.hf_cache_dir()}): "
            f"run `vggts weights download {name}`"
        )
    return path


@app.command()
@one_line_errors
def download(
    name: Annotated[str, typer.Argument(help=f"Which weights: {_NAMES}.", show_default=False)],
    force: Annotated[
        bool,
        typer.Option("--force", help="Download again over a cached copy (e.g. one `verify` found damaged)."),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Download weights into the Hugging Face cache and record their size and sha256; prints the path.

    Nothing is fetched again when the cached copy is current (unless --force).
    """
    if quiet:
        typer.echo(hub.download(name, force=force))
        return
    with _hash_bar() as progress:
        path = hub.download(name, progress=progress, force=force)
    typer.echo(path)


@app.command("list")
@one_line_errors
def list_weights() -> None:
    """Show every known weight file: the shipped model, and each downloadable file's source, licence and
    whether (and where) it is downloaded."""
    offline = " (offline: HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
    typer.echo(f"Hugging Face cache: {hub.hf_cache_dir()}{offline}")
    shipped = shipped_model_path()
    typer.echo(f"\n{DEFAULT_MODEL}: shipped inside vggts ({shipped.name})")
    typer.echo(
        "  our small VGGT-S model, trained with `vggts train` (weights/RECIPE.md); --engine vggts uses it"
    )
    typer.echo(
        "  licence: Apache-2.0, as vggts (trained here; its stem starts from ImageNet weights, Apache-2.0)"
    )
    if shipped.is_file():
        typer.echo(f"  installed: {shipped} ({decimal(shipped.stat().st_size)})")
    else:
        typer.echo(f"  missing from this install: reinstall vggts ({shipped})")
    for entry in hub.WEIGHTS.values():
        path = hub.local_path(entry.name)
        size = f" ({entry.size})" if entry.size else ""
        typer.echo(f"\n{entry.name}: {entry.repo} {entry.filename}{size}")
        typer.echo(f"  {entry.description}")
        typer.echo(f"  licence: {entry.licence}")
        if path is None:
            typer.echo(f"  not downloaded: run `vggts weights download {entry.name}`")
        else:
            typer.echo(f"  downloaded: {path} ({decimal(path.stat().st_size)})")


@app.command()
@one_line_errors
def verify(
    target: Annotated[
        str,
        typer.Argument(help=f"A weights name ({_NAMES}) or the path of a weight file.", show_default=False),
    ],
) -> None:
    """Check a weight file's size and sha256 against its download record and its Hugging Face blob name.

    A damaged file fails with exit code 1. A file with nothing to compare with (e.g. a copy made by hand)
    only gets its sha256 printed: compare it with the SHA256 shown on the file's page on huggingface.co.
    """
    local = Path(target).expanduser()
    if not local.is_file():
        if target not in hub.WEIGHTS:
            raise VggtsError(f"{target}: no such file, and not a known weights name ({_NAMES})")
        local = _require_local(target)
    with _hash_bar() as progress:
        result = hub.verify(local, progress)
    typer.echo(printable(str(result.path)))
    typer.echo(f"  size:   {result.size:,} bytes")
    typer.echo(f"  sha256: {result.sha256}")
    if result.checked_against:
        typer.echo(f"  ok: matches {' and '.join(result.checked_against)}")
    else:
        typer.echo(
            "  nothing recorded to compare with: check the sha256 against the file's page on huggingface.co"
        )


@app.command()
@one_line_errors
def path(name: Annotated[str, typer.Argument(help=f"Which weights: {_NAMES}.", show_default=False)]) -> None:
    """Print the local path of downloaded weights (exit code 1 when they are not downloaded)."""
    typer.echo(_require_local(name))
