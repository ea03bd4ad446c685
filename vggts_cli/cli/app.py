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
from vggts_cli.errors import VggtsError
from vggts_cli.options import Device, parse_offsets, parse_write

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


@app.command(no_args_is_help=True)
@one_line_errors
def propagate(
    src: Annotated[Path, typer.Option(help="Video holding the seed mask's frame (e.g. the head camera).")],
    dst: Annotated[list[Path], typer.Option(help="Another camera's video; repeat for more cameras.")],
    mask: Annotated[
        Path, typer.Option(help="Binary PNG (0 / non-zero) of the object, at SRC's display size.")
    ],
    out: Annotated[Path, typer.Option(help="Output folder; one sub-folder per camera (the video's stem).")],
    mask_frame: Annotated[int, typer.Option(help="Frame index of SRC that the mask belongs to.")] = 0,
    write: Annotated[
        str,
        typer.Option(help="Comma list of outputs: rle (masks.json), overlay, redact, png (masks/), matte."),
    ] = "rle,overlay",
    redact: Annotated[RedactMode, typer.Option(help="How redacted.mp4 hides the object.")] = RedactMode.blur,
    margin: Annotated[
        int | None,
        typer.Option(help="Grow the redacted region by this many pixels [default: 2% of diagonal]."),
    ] = None,
    blur: Annotated[
        float, typer.Option(help="Blur kernel: fraction of the object's size (<=1) or pixels (>1).")
    ] = 0.5,
    pixel_size: Annotated[
        float, typer.Option(help="Mosaic block: fraction of the object's size (<=1) or pixels (>1).")
    ] = 0.125,
    fill_color: Annotated[str, typer.Option(help="Colour for --redact fill: #rrggbb or r,g,b.")] = "#000000",
    overlay_color: Annotated[
        str, typer.Option(help="Tint of the overlay video: #rrggbb or r,g,b.")
    ] = "#ff00aa",
    engine: Annotated[
        str | None,
        typer.Option(
            help="Segmentation engine: vggts (learned) or classic (weight-free feature matching and flow) "
            "[default: whichever scores best on our validation scenes, vggts with the shipped model].",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="For --engine vggts: a model file, vggt-s-lite (shipped, the default) or vggt-s-1b "
            "(the published weights, see `vggts weights`)."
        ),
    ] = None,
    device: Annotated[Device, typer.Option(help="Where the model runs.")] = Device.auto,
    offset: Annotated[
        list[str] | None,
        typer.Option(
            help="CAMERA=SECONDS added to that camera's timestamps (camera = file stem); repeatable."
        ),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue a killed job in OUT where it stopped.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier job's outputs in OUT.")] = False,
    json_summary: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary (per camera: frames, mean score, frames/s).")
    ] = False,
) -> None:
    """Segment the object of MASK in every frame of SRC and of every DST camera, and write the outputs.

    Example: vggts propagate --src ego.mp4 --dst exo.mp4 --mask ego_mask.png --out out/ --write rle,redact
    """
    from vggts_cli.engines.registry import default_engine, make_engine
    from vggts_cli.pipeline.run import PropagateJob, prepare, run
    from vggts_cli.sinks.base import SinkOptions

    options = SinkOptions(
        overlay_color=overlay_color,
        redact_mode=redact.value,
        margin_px=margin,
        blur=blur,
        pixel_block=pixel_size,
        fill_color=fill_color,
    )
    job = PropagateJob(
        src=src,
        dsts=tuple(dst),
        mask=mask,
        out=out,
        mask_frame=mask_frame,
        write=parse_write(write),
        sink_options=options,
        engine=engine or default_engine(),
        model=model,
        device=device.value,
        offsets=parse_offsets(offset or []),
        resume=resume,
        overwrite=overwrite,
    )
    prepared = prepare(job)
    seg_engine = make_engine(job.engine, model, device.value)
    total = sum(c.info.num_frames for c in prepared.cameras)
    with progress_bar() as bar:
        tasks = {
            "segment": bar.add_task("segment", total=total),
            "render": bar.add_task("write outputs", total=total),
        }
        summaries = run(prepared, seg_engine, lambda stage, n: bar.advance(tasks[stage], n))
    if json_summary:
        print(json.dumps({"out": str(out), "cameras": [s.as_dict() for s in summaries]}, indent=2))
    else:
        for s in summaries:
            stderr.print(
                f"{s.name}: {s.frames} frames, mean score {s.mean_score:.2f}, {s.fps:.1f} frames/s "
                f"-> {out / s.name}"
            )


def _register_subcommands() -> None:
    """Commands that live in their own modules."""
    from vggts_cli.cli import batch, bench, train
    from vggts_cli.cli import eval as eval_cmd
    from vggts_cli.cli.weights import app as weights_app

    app.add_typer(weights_app, name="weights")
    bench.register(app)
    batch.register(app)
    eval_cmd.register(app)
    train.register(app)


_register_subcommands()


def main() -> None:
    """Console-script entry point."""
    app()
