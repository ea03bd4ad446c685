"""overlay.mp4: each frame with every object's mask tinted and outlined in its colour, and a legend: each
object's name (several objects) and presence score."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vggts_cli.geometry import bbox
from vggts_cli.masks.objects import ONE_OBJECT, TrackedObject
from vggts_cli.masks.ops import paste
from vggts_cli.sinks.base import Color, SinkOptions, VideoSink
from vggts_cli.video.reader import Frame, VideoInfo
from vggts_cli.video.writer import VideoWriter

# Colours of the second and later objects (the first has --overlay-color): far apart in hue and lightness.
PALETTE: tuple[Color, ...] = (
    (0, 200, 255),
    (255, 200, 0),
    (60, 220, 60),
    (255, 90, 40),
    (150, 90, 255),
    (255, 255, 255),
    (0, 120, 120),
    (180, 120, 60),
)


def object_colors(count: int, options: SinkOptions) -> list[Color]:
    """The overlay colour of each of `count` objects: --overlay-color, then the palette, repeating."""
    return [options.overlay_color, *(PALETTE[n % len(PALETTE)] for n in range(count - 1))]  # type: ignore[list-item]


def _tint(out: np.ndarray, mask: np.ndarray, color: Color, opacity: float, line: int) -> bool:
    """Tint and outline (H, W) bool `mask` on `out` in place; False when the mask is empty."""
    box = bbox(mask)
    if box is None:
        return False
    target, inside = out[box.slices], mask[box.slices]
    tint = np.empty_like(target)
    tint[:] = color
    blended = cv2.addWeighted(target, 1 - opacity, tint, opacity, 0)
    out[box.slices] = paste(blended, inside, target)
    contours, _ = cv2.findContours(
        inside.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE, offset=(box.x0, box.y0)
    )
    cv2.drawContours(out, contours, -1, color, line, cv2.LINE_AA)
    return True


def draw_overlay(
    image: np.ndarray,
    masks: np.ndarray,
    scores: Sequence[float],
    options: SinkOptions,
    objects: Sequence[TrackedObject] = ONE_OBJECT,
) -> np.ndarray:
    """A copy of (H, W, 3) uint8 RGB `image` with each of the (O, H, W) bool `masks` tinted and outlined in
    its object's colour; top left, a line per object: its score (and name, with several objects)."""
    masks = masks[None] if masks.ndim == 2 else masks
    out = image.copy()
    height, width = masks.shape[1:]
    scale = math.hypot(width, height) / 1000  # line and text sizes follow the frame size
    thickness = max(1, round(2 * scale))
    colors = object_colors(len(objects), options)
    for n, (mask, score, obj, color) in enumerate(zip(masks, scores, objects, colors, strict=True)):
        seen = _tint(out, mask, color, options.overlay_opacity, thickness)
        text = f"score {score:.2f}" if seen else f"absent ({score:.2f})"
        if len(objects) > 1:
            text = f"{obj.name}: {text}"
        origin = (round(10 * scale), round((30 + 30 * n) * scale))
        font_scale = 0.8 * scale
        ink = (255, 255, 255) if len(objects) == 1 else color
        cv2.putText(
            out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 3 * thickness, cv2.LINE_AA
        )
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, ink, thickness, cv2.LINE_AA)
    return out


class OverlaySink(VideoSink):
    """H.264 mp4 preview of the tracking, for checking a result by eye (no audio)."""

    def __init__(
        self, path: Path, info: VideoInfo, options: SinkOptions, objects: Sequence[TrackedObject] = ONE_OBJECT
    ) -> None:
        super().__init__(path, info, objects)
        self._options = options
        self._writer = VideoWriter.h264(path, info)

    def _write(self, frame: Frame, masks: np.ndarray, scores: tuple[float, ...]) -> None:
        self._writer.write(draw_overlay(frame.image, masks, scores, self._options, self.objects), frame.index)
