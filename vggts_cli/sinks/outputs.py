"""Which outputs `vggts propagate` can write, their file names, and building their sinks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from vggts_cli.errors import UsageError
from vggts_cli.masks.objects import ONE_OBJECT, TrackedObject
from vggts_cli.sinks.alpha import AlphaSequenceSink
from vggts_cli.sinks.base import Sink, SinkOptions
from vggts_cli.sinks.cover import Upcoming
from vggts_cli.sinks.matte import MatteSink
from vggts_cli.sinks.overlay import OverlaySink
from vggts_cli.sinks.redact import RedactSink
from vggts_cli.sinks.review import ReviewSink
from vggts_cli.sinks.rle import RleSink
from vggts_cli.sinks.sequence import PngSequenceSink
from vggts_cli.video.reader import VideoInfo

OUTPUT_KINDS = ("rle", "overlay", "redact", "png", "matte", "alpha", "review")
OUTPUT_NAMES = {
    "rle": "masks.json",
    "overlay": "overlay.mp4",
    "redact": "redacted.mp4",
    "png": "masks",
    "matte": "matte.mov",
    "alpha": "alpha",  # a folder per object
    "review": "review.png",
}


def check_outputs(kinds: Sequence[str], option: str = "--write") -> None:
    """Raise UsageError unless `kinds` is a non-empty list of OUTPUT_KINDS."""
    if not kinds or any(k not in OUTPUT_KINDS for k in kinds):
        raise UsageError(f"{option} takes a comma list of {', '.join(OUTPUT_KINDS)}; got {','.join(kinds)}")


def _build(
    kind: str,
    path: Path,
    info: VideoInfo,
    options: SinkOptions,
    objects: Sequence[TrackedObject],
    upcoming: Upcoming | None,
) -> Sink:
    if kind == "rle":
        return RleSink(path, info, objects)
    if kind == "png":
        return PngSequenceSink(path, info, objects, options.start_number)
    if kind == "alpha":
        return AlphaSequenceSink(path, info, objects, options.start_number, options.alpha_format)
    if kind == "overlay":
        return OverlaySink(path, info, options, objects)
    if kind == "redact":
        return RedactSink(path, info, options, upcoming, objects)
    if kind == "review":
        return ReviewSink(path, info, options, objects)
    return MatteSink(path, info, objects)


def build_sinks(
    kinds: Iterable[str],
    out_dir: Path,
    info: VideoInfo,
    options: SinkOptions,
    objects: Sequence[TrackedObject] = ONE_OBJECT,
    upcoming: Upcoming | None = None,
) -> list[Sink]:
    """One sink per requested kind (duplicates ignored), writing `out_dir / OUTPUT_NAMES[kind]`.

    `objects`: the job's objects, in the order of the masks each frame brings. `upcoming` (frame index ->
    (masks (O, H, W) bool, scores)), where every mask is known before the frames are
    decoded, lets the redaction look ahead instead of holding frames in memory.

    Raises UsageError for an unknown kind; if one sink cannot start, those already started are aborted.
    """
    kinds = list(dict.fromkeys(kinds))
    check_outputs(kinds, "outputs")
    out_dir.mkdir(parents=True, exist_ok=True)
    sinks: list[Sink] = []
    try:
        for kind in kinds:
            sinks.append(_build(kind, out_dir / OUTPUT_NAMES[kind], info, options, objects, upcoming))
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return sinks
