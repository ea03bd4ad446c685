"""What every output of `vggts propagate` implements, and the options that shape them."""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from vggts_cli.errors import UsageError, VggtsError
from vggts_cli.fsutil import PartialOutput, naming
from vggts_cli.masks.objects import ONE_OBJECT, TrackedObject
from vggts_cli.video.reader import Frame, VideoInfo
from vggts_cli.video.writer import VideoWriter


class RedactMode(str, Enum):
    """How redacted.mp4 hides the object (compares equal to its name: `RedactMode.blur == "blur"`)."""

    blur = "blur"
    pixelate = "pixelate"
    fill = "fill"


class AlphaFormat(str, Enum):
    """The files of `--write alpha`: 16-bit PNG, or half-float OpenEXR (compares equal to its name)."""

    png = "png"
    exr = "exr"


MAX_START_NUMBER = 9_999_999  # --start-number: up to a day of frames at any VFX rate, and then some

Color = tuple[int, int, int]


def parse_color(text: str | Color) -> Color:
    """`"#ff8800"`, `"ff8800"` or `"255,136,0"` (or an RGB tuple) -> (r, g, b) in 0..255."""
    if not isinstance(text, str):
        rgb = tuple(int(c) for c in text)
    elif re.fullmatch(r"#?[0-9a-fA-F]{6}", text.strip()):
        hex_digits = text.strip().lstrip("#")
        rgb = tuple(int(hex_digits[i : i + 2], 16) for i in (0, 2, 4))
    elif re.fullmatch(r"\s*\d+\s*,\s*\d+\s*,\s*\d+\s*", text):
        rgb = tuple(int(c) for c in text.split(","))
    else:
        raise UsageError(f"colour {text!r} is neither #rrggbb nor r,g,b")
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise UsageError(f"colour {text!r} needs three components in 0..255")
    return rgb  # type: ignore[return-value]


def format_color(rgb: Color | str) -> str:
    """(r, g, b) -> "#rrggbb" (what `parse_color` reads back)."""
    r, g, b = parse_color(rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def _size(value: float, extent: int, minimum: int) -> int:
    """A size given as a fraction of `extent` (value <= 1) or in pixels (value > 1), at least `minimum`."""
    pixels = value * extent if value <= 1 else value
    return max(minimum, round(pixels))


@dataclass
class SinkOptions:
    """How the visual outputs look. Colours accept anything `parse_color` does and are stored as RGB.

    Sizes given as a float <= 1 are a fraction of the longer side of the redacted region's bounding box,
    so the strength follows the object as it nears or leaves the camera; a float > 1 is pixels.
    """

    overlay_color: Color | str = (255, 0, 170)
    overlay_opacity: float = 0.5
    redact_mode: RedactMode | str = RedactMode.blur
    margin_px: int | None = None  # grow the redacted region by this much; None: 2 % of the frame diagonal
    blur: float = 0.5  # blur kernel size
    pixel_block: float = 0.125  # mosaic block size
    fill_color: Color | str = (0, 0, 0)
    # Redaction over-covers rather than leaks (sinks/cover.py): an unsure frame (empty mask, score under
    # redact_min_score, or area under redact_shrink of the last sure mask) within redact_hold frames of the
    # last sure mask also covers that mask; every frame covers its redact_spread neighbours' masks; the
    # margin grows by redact_grow of the object's size and redact_motion times its per-frame motion.
    redact_hold: int = 30  # frames (1 s at 30 fps): a camera may find the object this late
    redact_min_score: float = 0.5
    redact_shrink: float = 0.6
    redact_spread: int = 2  # frames on each side
    redact_grow: float = 0.1  # of the longer side of the covered masks' bounding box
    redact_motion: float = 1.0  # times the largest per-frame move of a bounding-box edge
    redact_objects: tuple[str, ...] = ()  # the objects redacted (names or ids); empty: every object
    # Image sequences (masks/, alpha/): frame i is file number start_number + i (1001 is the VFX norm).
    start_number: int = 0
    alpha_format: AlphaFormat | str = AlphaFormat.png

    def __post_init__(self) -> None:
        self.overlay_color = parse_color(self.overlay_color)
        self.fill_color = parse_color(self.fill_color)
        try:
            self.redact_mode = RedactMode(self.redact_mode)
        except ValueError:
            modes = ", ".join(m.value for m in RedactMode)
            raise UsageError(f"redact mode {self.redact_mode!r} is not one of {modes}") from None
        try:
            self.alpha_format = AlphaFormat(self.alpha_format)
        except ValueError:
            formats = ", ".join(f.value for f in AlphaFormat)
            raise UsageError(f"--alpha-format {self.alpha_format!r} is not one of {formats}") from None
        start = self.start_number
        if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= MAX_START_NUMBER:
            raise UsageError(
                f"--start-number {start} is not a frame number in [0, {MAX_START_NUMBER}] "
                "(the first frame's file number; 1001 is the VFX norm)"
            )
        if not 0.0 <= self.overlay_opacity <= 1.0:
            raise UsageError(f"overlay opacity {self.overlay_opacity} is not in [0, 1]")
        if self.margin_px is not None and self.margin_px < 0:
            raise UsageError(f"redaction margin {self.margin_px} px is negative")
        if not all(0 < v < math.inf for v in (self.blur, self.pixel_block)):  # nan fails too
            raise UsageError(
                f"blur ({self.blur}) and pixel size ({self.pixel_block}) must be positive and finite"
            )
        self._check_cover()

    def _check_cover(self) -> None:
        """The hold-over settings: finite, and in their ranges."""
        for name, low, high in (
            ("redact_hold", 0, 10_000),
            ("redact_spread", 0, 1_000),
            ("redact_min_score", 0.0, 1.0),
            ("redact_shrink", 0.0, 1.0),
            ("redact_grow", 0.0, 10.0),
            ("redact_motion", 0.0, 100.0),
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and low <= value <= high):
                option = "--" + name.removeprefix("redact_").replace("_", "-")
                raise UsageError(f"{option} {value} is not in [{low}, {high}]")

    def margin_for(self, width: int, height: int) -> int:
        """Redaction margin in pixels for a width x height frame."""
        if self.margin_px is not None:
            return self.margin_px
        return max(4, round(0.02 * math.hypot(width, height)))

    def blur_px(self, extent: int) -> int:
        """Odd blur kernel size for an object whose bounding box's longer side is `extent` pixels."""
        return _size(self.blur, extent, 9) | 1

    def block_px(self, extent: int) -> int:
        """Mosaic block size for an object whose bounding box's longer side is `extent` pixels."""
        return _size(self.pixel_block, extent, 4)


class Sink(ABC):
    """One output file or folder for one camera, fed every frame in index order with its objects' masks
    and scores (`objects`: the job's objects, in the order of the masks).

    Use as a context manager (close on success, abort on an exception) or call `close` / `abort`. A job
    with several outputs calls `finish` on each, then `commit` on each once all are finished, so that a
    failure leaves none of them under its final name. Subclasses write under a partial name and implement
    `_write`, `_finish` (complete, still under the partial name), `_commit` (rename) and `abort`.
    """

    def __init__(self, path: Path, info: VideoInfo, objects: Sequence[TrackedObject] = ONE_OBJECT) -> None:
        self.path = path
        self.info = info
        self.objects = tuple(objects)
        self._next_index = 0

    def write(self, frame: Frame, masks: np.ndarray, scores: Sequence[float] | float) -> None:
        """Add frame `frame.index` (must be the next one): masks (O, H, W) bool at the video's display size,
        one per object and not overlapping, and their scores; a one-object job may pass (H, W) and a float.
        """
        if frame.index != self._next_index:
            raise VggtsError(f"{self.path}: expected frame {self._next_index}, got frame {frame.index}")
        masks = np.asarray(masks).astype(bool, copy=False)
        masks = masks[None] if masks.ndim == 2 else masks
        scores = tuple(float(s) for s in np.atleast_1d(scores))
        if masks.shape[1:] != (self.info.height, self.info.width):
            raise VggtsError(
                f"{self.path}: mask of frame {frame.index} is {masks.shape[2]}x{masks.shape[1]}, "
                f"the video is {self.info.width}x{self.info.height}"
            )
        if not len(masks) == len(scores) == len(self.objects):
            raise VggtsError(
                f"{self.path}: frame {frame.index} has {len(masks)} masks and {len(scores)} scores "
                f"for {len(self.objects)} objects"
            )
        with naming(self.path):
            self._write(frame, masks, scores)
        self._next_index += 1

    def close(self) -> None:
        """Finish the output and move it to its final name; raise (leaving nothing) if frames are missing."""
        self.finish()
        self.commit()

    def finish(self) -> None:
        """Complete the output under its partial name; raise (leaving nothing) if frames are missing."""
        try:
            if self._next_index != self.info.num_frames:
                raise VggtsError(
                    f"{self.path}: got {self._next_index} of {self.info.num_frames} frames; nothing written"
                )
            with naming(self.path):
                self._finish()
        except BaseException:
            self.abort()
            raise

    def commit(self) -> None:
        """Move the finished output to its final name."""
        self._commit()

    @abstractmethod
    def abort(self) -> None:
        """Remove the partial output, finished or not; nothing appears under the final name."""

    @abstractmethod
    def _write(self, frame: Frame, masks: np.ndarray, scores: tuple[float, ...]) -> None: ...

    @abstractmethod
    def _finish(self) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class FolderSink(Sink):
    """An output that is a folder of files (one or more per frame): filled under its partial name
    (`masks.part/`), a left-over partial folder cleared first, and renamed to `path` when every frame is in.
    `subfolders` are made inside it (one per object, say)."""

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        objects: Sequence[TrackedObject] = ONE_OBJECT,
        subfolders: Sequence[str] = (),
    ) -> None:
        super().__init__(path, info, objects)
        self._output = PartialOutput(path, fresh=True)
        self._output.path.mkdir()
        try:
            for name in subfolders:
                (self._output.path / name).mkdir(parents=True)
        except BaseException:
            self._output.discard()
            raise

    def _finish(self) -> None:
        pass  # every frame's files are already in the partial folder

    def _commit(self) -> None:
        self._output.commit()

    def abort(self) -> None:
        self._output.discard()


class VideoSink(Sink):
    """An output that is one encoded video: the subclass opens `self._writer` and encodes into it."""

    _writer: VideoWriter

    def _finish(self) -> None:
        self._writer.finish()

    def _commit(self) -> None:
        self._writer.commit()

    def abort(self) -> None:
        self._writer.abort()


@contextmanager
def aborted_on_error(sinks: list[Sink]) -> Iterator[None]:
    """On any error in the block, abort every sink of `sinks` (as it is then: it may grow inside)."""
    try:
        yield
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
