"""redacted.mp4: the object blurred, pixelated or filled in every frame, with a safety margin; audio kept.

Redaction errs on the side of covering too much (a privacy user would rather over-blur than leak one
frame): each frame covers the union of its own and its neighbours' masks, so a single missed frame or a
fast movement stays covered, and a frame whose mask came back empty while the presence score still says
"there" (at least `redact_threshold`) keeps the last non-empty mask.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import cv2
import numpy as np

from vggts_cli.geometry import Box
from vggts_cli.masks.ops import dilated_union, paste
from vggts_cli.sinks.base import Sink, SinkOptions
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


class RedactSink(Sink):
    """H.264 mp4 of the redacted frames, with the input's audio streams copied.

    Frames are written `options.redact_spread` frames late: the masks of the frames after each frame must
    be known before it can be covered.
    """

    def __init__(self, path: Path, info: VideoInfo, options: SinkOptions) -> None:
        super().__init__(path, info)
        self._options = options
        self._margin = options.margin_for(info.width, info.height)
        self._pending: deque[Frame] = deque()
        self._masks: deque[tuple[int, np.ndarray]] = deque()  # (frame index, covered mask), non-empty only
        # The last non-empty mask, while the following empty masks still score as present.
        self._held: np.ndarray | None = None
        self._writer = VideoWriter.h264(path, info, copy_audio=True)

    def _write(self, frame: Frame, mask: np.ndarray, score: float) -> None:
        if mask.any():
            self._held = mask
        elif score < self._options.redact_threshold:
            self._held = None  # confidently absent: a later empty mask is not this object's
        if self._held is not None:
            self._masks.append((frame.index, self._held))
        self._pending.append(frame)
        if len(self._pending) > self._options.redact_spread:
            self._emit(self._pending.popleft())

    def _emit(self, frame: Frame) -> None:
        """Write `frame` covering every mask within `redact_spread` frames of it."""
        spread = self._options.redact_spread
        while self._masks and self._masks[0][0] < frame.index - spread:
            self._masks.popleft()
        near = [mask for index, mask in self._masks if abs(index - frame.index) <= spread]
        grown = dilated_union(near, self._margin) if near else None
        image = frame.image if grown is None else redact(frame.image, *grown, self._options)
        self._writer.write(image, frame.index)

    def _finish(self) -> None:
        while self._pending:
            self._emit(self._pending.popleft())
        self._writer.finish()

    def _commit(self) -> None:
        self._writer.commit()

    def abort(self) -> None:
        self._writer.abort()
