"""matte.mov: ProRes 4444 with alpha, RGB = the frame and alpha = the mask, for editors and compositors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vggts_cli.sinks.base import VideoSink
from vggts_cli.video.reader import Frame, VideoInfo
from vggts_cli.video.writer import VideoWriter


class MatteSink(VideoSink):
    """Each frame as RGBA: colour untouched, alpha 255 inside the mask and 0 outside."""

    def __init__(self, path: Path, info: VideoInfo) -> None:
        super().__init__(path, info)
        self._writer = VideoWriter.prores4444(path, info)

    def _write(self, frame: Frame, mask: np.ndarray, score: float) -> None:
        rgba = np.empty((*mask.shape, 4), dtype=np.uint8)
        rgba[..., :3] = frame.image
        rgba[..., 3] = mask * np.uint8(255)
        self._writer.write(rgba, frame.index)
