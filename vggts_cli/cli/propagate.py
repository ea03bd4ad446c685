"""`vggts propagate`: one job — the object of one mask in every frame of every camera."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vggts_cli.cli.common import (
    ADAPT_HELP,
    DETAIL_HELP,
    MODEL_HELP,
    Detail,
    Device,
    one_line_errors,
    progress_bar,
    report,
)
from vggts_cli.engines.registry import default_engine
from vggts_cli.jobs import DEFAULT_WRITE, PreparedJob, PropagateJob, check_job, parse_list, parse_offsets
from vggts_cli.pipeline.run import CameraSummary
from vggts_cli.prompts import parse_masks
from vggts_cli.sinks.base import AlphaFormat, RedactMode, SinkOptions, format_color
from vggts_cli.video.sequence import DEFAULT_FPS, FPS_HELP, parse_fps

_DEFAULTS = SinkOptions()  # the one set of defaults of the visual outputs
WRITE_DEFAULT = ",".join(DEFAULT_WRITE)
REDACT_DEFAULT = RedactMode(_DEFAULTS.redact_mode)
ALPHA_FORMAT_DEFAULT = AlphaFormat(_DEFAULTS.alpha_format)
FILL_DEFAULT = format_color(_DEFAULTS.fill_color)
OVERLAY_DEFAULT = format_color(_DEFAULTS.overlay_color)

Src = Annotated[
    Path,
    typer.Option(
        metavar="VIDEO",
        help="Video holding the seed mask's frame (e.g. the head camera), or an image sequence: a folder of "
        "frames, plate/%04d.png or 'frames/*.jpg' (PNG, JPEG, EXR, TIFF).",
    ),
]
Dst = Annotated[
    list[Path] | None,
    typer.Option(
        metavar="VIDEO",
        help="Another camera's video or image sequence; repeat for more cameras [default: none: SRC alone, "
        "tracked both ways from the mask's frame].",
    ),
]
Mask = Annotated[
    list[Path],
    typer.Option(
        metavar="PNG",
        help="The object on SRC's frame --mask-frame, at SRC's display size: a binary PNG (0 / non-zero); "
        "repeat for more objects (each named by its file stem), or give one label map (0 = background, "
        "1..N = objects, 8 or 16 bit, no pixel at 255/65535).",
    ),
]
Out = Annotated[
    Path,
    typer.Option(
        metavar="DIR",
        help="Output folder; one sub-folder per camera (the video's stem, a sequence's folder).",
    ),
]
Fps = Annotated[
    str,
    typer.Option(
        metavar="RATE",
        help=f"Frame rate of every image-sequence camera ({FPS_HELP}): frame i at i/RATE s. "
        "Ignored for videos, which keep their own timing.",
    ),
]
MaskFrame = Annotated[int, typer.Option(metavar="N", help="Frame index of SRC that the mask belongs to.")]
Write = Annotated[
    str,
    typer.Option(
        metavar="LIST",
        help="Comma list of outputs: rle (masks.json), overlay, redact, png (masks/), matte (matte.mov), "
        "alpha (alpha/<object>/: one 16-bit PNG or EXR matte sequence per object), "
        "review (review.png: the frames to check).",
    ),
]
StartNumber = Annotated[
    int,
    typer.Option(
        metavar="N",
        help="File number of the first frame in the image-sequence outputs (masks/, alpha/): frame i is "
        "N+i, at least 6 digits (1001 is the VFX norm).",
    ),
]
AlphaFormatOpt = Annotated[
    AlphaFormat,
    typer.Option(
        help="Files of --write alpha: 16-bit PNG (0/65535) or OpenEXR (half float, one channel Y); "
        "straight alpha.",
    ),
]
Redact = Annotated[RedactMode, typer.Option(help="How redacted.mp4 hides the object.")]
Margin = Annotated[
    int | None,
    typer.Option(
        metavar="PX", help="Grow the redacted region by this many pixels [default: 2% of diagonal]."
    ),
]
Blur = Annotated[
    float,
    typer.Option(metavar="SIZE", help="Blur kernel: fraction of the object's size (<=1) or pixels (>1)."),
]
PixelSize = Annotated[
    float,
    typer.Option(metavar="SIZE", help="Mosaic block: fraction of the object's size (<=1) or pixels (>1)."),
]
Hold = Annotated[
    int,
    typer.Option(
        metavar="FRAMES",
        help="Redaction: frames over which the last sure mask stays covered where the new mask is missing, "
        "much smaller or below --min-score.",
    ),
]
MinScore = Annotated[
    float,
    typer.Option(
        metavar="SCORE", help="Redaction: a mask scoring below this is unsure (the held mask is added)."
    ),
]
Spread = Annotated[
    int,
    typer.Option(
        metavar="FRAMES", help="Redaction: each frame also covers this many frames' masks each side."
    ),
]
Grow = Annotated[
    float,
    typer.Option(
        metavar="FRACTION",
        help="Redaction: grow the margin by this fraction of the object's size (motion adds).",
    ),
]
FillColor = Annotated[str, typer.Option(metavar="COLOUR", help="Colour for --redact fill: #rrggbb or r,g,b.")]
OverlayColor = Annotated[
    str, typer.Option(metavar="COLOUR", help="Tint of the overlay video: #rrggbb or r,g,b.")
]
Engine = Annotated[
    str | None,
    typer.Option(
        metavar="NAME",
        help="Segmentation engine: classic (weight-free feature matching and flow) or vggts (learned) "
        f"[default: {default_engine()}, the best on our real validation footage].",
        show_default=False,
    ),
]
Model = Annotated[str | None, typer.Option(metavar="NAME|FILE", help=MODEL_HELP)]
DeviceOpt = Annotated[Device, typer.Option(help="Where the model runs.")]
Adapt = Annotated[int | None, typer.Option(metavar="STEPS", help=ADAPT_HELP, show_default=False)]
DetailOpt = Annotated[Detail | None, typer.Option(help=DETAIL_HELP, show_default=False)]
Offset = Annotated[
    list[str] | None,
    typer.Option(
        metavar="CAMERA=SECONDS",
        help="Seconds added to that camera's timestamps (camera = file stem or sequence folder); "
        "repeatable [default: none].",
    ),
]
RedactObjects = Annotated[
    str | None,
    typer.Option(
        metavar="LIST",
        help="Redaction: comma list of the objects to hide (names or ids) [default: every object].",
    ),
]
Resume = Annotated[bool, typer.Option("--resume", help="Continue a killed job in OUT where it stopped.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an earlier job's outputs in OUT.")]
JsonSummary = Annotated[
    bool, typer.Option("--json", help="Print a JSON summary (per camera: frames, mean score, frames/s).")
]


@one_line_errors
def propagate(
    src: Src,
    mask: Mask,
    out: Out,
    dst: Dst = None,
    mask_frame: MaskFrame = 0,
    fps: Fps = str(DEFAULT_FPS),
    write: Write = WRITE_DEFAULT,
    start_number: StartNumber = _DEFAULTS.start_number,
    alpha_format: AlphaFormatOpt = ALPHA_FORMAT_DEFAULT,
    redact: Redact = REDACT_DEFAULT,
    margin: Margin = _DEFAULTS.margin_px,
    blur: Blur = _DEFAULTS.blur,
    pixel_size: PixelSize = _DEFAULTS.pixel_block,
    hold: Hold = _DEFAULTS.redact_hold,
    min_score: MinScore = _DEFAULTS.redact_min_score,
    spread: Spread = _DEFAULTS.redact_spread,
    grow: Grow = _DEFAULTS.redact_grow,
    redact_objects: RedactObjects = None,
    fill_color: FillColor = FILL_DEFAULT,
    overlay_color: OverlayColor = OVERLAY_DEFAULT,
    engine: Engine = None,
    model: Model = None,
    device: DeviceOpt = Device.auto,
    adapt: Adapt = None,
    detail: DetailOpt = None,
    offset: Offset = None,
    resume: Resume = False,
    overwrite: Overwrite = False,
    json_summary: JsonSummary = False,
) -> None:
    """Segment the objects of MASK in every frame of SRC and of every DST camera, and write the outputs.

    Example: vggts propagate --src ego.mp4 --dst exo.mp4 --mask face.png --mask badge.png --out out/
    --write rle,redact
    """
    seeds, prompts = parse_masks(mask)
    colours = {"overlay_color": overlay_color, "fill_color": fill_color}
    cover = {"redact_hold": hold, "redact_min_score": min_score, "redact_spread": spread, "redact_grow": grow}
    cover["redact_objects"] = parse_list(redact_objects or "")
    looks = {"redact_mode": redact, "margin_px": margin, "blur": blur, "pixel_block": pixel_size}
    sequences = {"start_number": start_number, "alpha_format": alpha_format}
    options = SinkOptions(**looks, **colours, **cover, **sequences)
    job = PropagateJob(
        src=src,
        dsts=tuple(dst or ()),
        masks=seeds,
        prompts=prompts,
        out=out,
        mask_frame=mask_frame,
        write=parse_list(write),
        sink_options=options,
        engine=engine or default_engine(),
        model=model,
        device=device.value,
        adapt=adapt,
        detail=None if detail is None else detail.value,
        offsets=parse_offsets(offset or []),
        resume=resume,
        overwrite=overwrite,
        fps=parse_fps(fps),
    )
    _report(out, _run(check_job(job)), json_summary)


def _run(prepared: PreparedJob) -> list[CameraSummary]:
    """Build the job's engine and run it under two progress bars (segment, write outputs)."""
    from vggts_cli.engines.registry import make_engine
    from vggts_cli.pipeline.run import run

    job = prepared.job
    seg_engine = make_engine(job.engine, job.model, job.device, adapt=job.adapt, detail=job.detail)
    total = sum(c.info.num_frames for c in prepared.cameras)
    with progress_bar() as bar:
        tasks = {
            "segment": bar.add_task("segment", total=total),
            "render": bar.add_task("write outputs", total=total),
        }
        return run(prepared, seg_engine, lambda stage, n: bar.advance(tasks[stage], n))


def _report(out: Path, summaries: list[CameraSummary], json_summary: bool) -> None:
    if json_summary:
        print(json.dumps({"out": str(out), "cameras": [s.as_dict() for s in summaries]}, indent=2))
        return
    for s in summaries:
        report(
            f"{s.name}: {s.frames} frames, mean score {s.mean_score:.2f}, {s.fps:.1f} frames/s "
            f"-> {out / s.name}"
        )
