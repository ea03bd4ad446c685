"""overlay.mp4: each frame with the mask tinted, its outline drawn and the presence score printed."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from vggts_cli.geometry import bbox
from vggts_cli.masks.ops import paste
from vggts_cli.sinks.base import SinkOptions, VideoSink
from vggts_cli.video.reader import Frame, VideoInfo
from vggts_cli.video.writer import VideoWriter


def draw_overlay(image: np.ndarray, mask: np.ndarray, score: float, options: SinkOptions) -> np.ndarray:
    """A copy of (H, W, 3) uint8 RGB `image` with (H, W) bool `mask` tinted and outlined, score top-left."""
    out = image.copy()
    height, width = mask.shape
    scale = math.hypot(width, height) / 1000  # line and text sizes follow the frame size
    color = options.overlay_color
    box = bbox(mask)
    if box is not None:
        target, inside = out[box.slices], mask[box.slices]
        tint = np.empty_like(target)
        tint[:] = color
        blended = cv2.addWeighted(target, 1 - options.overlay_opacity, tint, options.overlay_opacity, 0)
        out[box.slices] = paste(blended, inside, target)
        contours, _ = cv2.findContours(
            inside.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE, offset=(box.x0, box.y0)
        )
        cv2.drawContours(out, contours, -1, color, max(1, round(2 * scale)), cv2.LINE_AA)
    text = f"score {score:.2f}" if box is not None else f"absent ({score:.2f})"
    origin = (round(10 * scale), round(30 * scale))
    font_scale, thickness = 0.8 * scale, max(1, round(2 * scale))
    cv2.putText(
        out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 3 * thickness, cv2.LINE_AA
    )
    cv2.putText(
        out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), thickness, cv2.LINE_AA
    )
    return out


class OverlaySink(VideoSink):
    """H.264 mp4 preview of the tracking, for checking a result by eye (no audio)."""

    def __init__(self, path: Path, info: VideoInfo, options: SinkOptions) -> None:
        super().__init__(path, info)
        self._options = options
        self._writer = VideoWriter.h264(path, info)

    def _write(self, frame: Frame, mask: np.ndarray, score: float) -> None:
        self._writer.write(draw_overlay(frame.image, mask, score, self._options), frame.index)
