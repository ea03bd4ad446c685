"""redacted.mp4: the object blurred, pixelated or filled in every frame, with a safety margin; audio kept.

Redaction errs on the side of covering too much (a privacy user would rather over-blur than leak one
frame): what each frame covers is decided by `Cover` (sinks/cover.py): the union of its own and its
neighbours' masks, masks held over frames where the engine is unsure, and a margin that grows with the
object's size and motion.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vggts_cli.geometry import Box
from vggts_cli.masks.objects import ONE_OBJECT, TrackedObject
from vggts_cli.masks.ops import paste
from vggts_cli.sinks.base import SinkOptions, VideoSink
from vggts_cli.sinks.cover import AheadCover, CoverFrame, Covers, Upcoming
from vggts_cli.video.reader import Frame, VideoInfo
from vggts_cli.video.writer import VideoWriter


def redact(image: np.ndarray, box: Box, region: np.ndarray, options: SinkOptions) -> np.ndarray:
    """A copy of (H, W, 3) uint8 `image` with `region` ((box.height, box.width) bool, placed at `box`)
    blurred, pixelated or filled as `options.redact_mode` says. Only the box (plus the kernel's reach)
    is processed."""
    height, width = image.shape[:2]
    extent = max(box.height, box.width)
    if options.redact_mode == "fill":
        replacement = np.empty((box.height, box.width, 3), dtype=np.uint8)
        replacement[:] = options.fill_color
    elif options.redact_mode == "blur":
        kernel = options.blur_px(extent)
        # Blur a larger window so that pixels near the box edge average real neighbours, not a mirror of
        # the object itself. Stack blur costs the same for any kernel size.
        outer = box.grow(kernel // 2, height, width)
        blurred = cv2.stackBlur(image[outer.slices], (kernel, kernel))
        replacement = blurred[box.y0 - outer.y0 : box.y1 - outer.y0, box.x0 - outer.x0 : box.x1 - outer.x0]
    else:
        block = options.block_px(extent)
        # Blocks sit on a grid fixed to the frame, so the mosaic does not shimmer as the box moves.
        grid = Box(x0=box.x0 // block * block, y0=box.y0 // block * block, x1=box.x1, y1=box.y1)
        patch = image[grid.slices]
        pad_y, pad_x = -patch.shape[0] % block, -patch.shape[1] % block
        patch = cv2.copyMakeBorder(patch, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        small = cv2.resize(
            patch, (patch.shape[1] // block, patch.shape[0] // block), interpolation=cv2.INTER_AREA
        )
        mosaic = np.repeat(np.repeat(small, block, axis=0), block, axis=1)
        replacement = mosaic[box.y0 - grid.y0 : box.y1 - grid.y0, box.x0 - grid.x0 : box.x1 - grid.x0]
    out = image.copy()
    out[box.slices] = paste(replacement, region, out[box.slices])
    return out


def redacted_objects(objects: Sequence[TrackedObject], options: SinkOptions) -> list[int]:
    """Indices of the objects redaction covers: those `redact_objects` names (by name or id), else all."""
    if not options.redact_objects:
        return list(range(len(objects)))
    return [n for n, o in enumerate(objects) if any(o.called(name) for name in options.redact_objects)]


class RedactSink(VideoSink):
    """H.264 mp4 of the redacted frames (the objects of `redacted_objects`), with the input's audio streams
    copied.

    A frame's cover needs the masks of up to `redact_hold + redact_spread` later frames. Given `upcoming`
    (frame index -> (mask, score), as the render stage reads them from the journal) the sink looks ahead
    itself and writes each frame at once; without it, frames wait in memory until their cover is known.
    """

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        options: SinkOptions,
        upcoming: Upcoming | None = None,
        objects: Sequence[TrackedObject] = ONE_OBJECT,
    ) -> None:
        super().__init__(path, info, objects)
        self._options = options
        chosen = redacted_objects(self.objects, options)
        self._cover = Covers(options, info.width, info.height, chosen)
        self._ahead = (
            None
            if upcoming is None
            else AheadCover(options, info.width, info.height, info.num_frames, upcoming, chosen)
        )
        self._pending: deque[Frame] = deque()
        self._writer = VideoWriter.h264(path, info, copy_audio=True)

    def _write(self, frame: Frame, masks: np.ndarray, scores: tuple[float, ...]) -> None:
        self._pending.append(frame)
        if self._ahead is not None:
            self._emit([self._ahead.at(frame.index)])
        else:
            self._emit(self._cover.push(frame.index, masks, scores))

    def _emit(self, covers: list[CoverFrame]) -> None:
        """Write the pending frames whose cover is known."""
        for cover in covers:
            frame = self._pending.popleft()
            assert frame.index == cover.index
            image = frame.image if cover.region is None else redact(frame.image, *cover.region, self._options)
            self._writer.write(image, frame.index)

    def _finish(self) -> None:
        if self._ahead is None:
            self._emit(self._cover.flush())
        super()._finish()
