"""matte.mov: ProRes 4444 with alpha, RGB = the frame and alpha = every object's mask, for editors and
compositors (one object apart: the label-map PNGs of `--write png`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vggts_cli.masks.objects import ONE_OBJECT, TrackedObject, union
from vggts_cli.sinks.base import VideoSink
from vggts_cli.video.reader import Frame, VideoInfo
from vggts_cli.video.writer import VideoWriter


class MatteSink(VideoSink):
    """Each frame as RGBA: colour untouched (straight alpha), alpha 255 inside any object and 0 outside."""

    def __init__(self, path: Path, info: VideoInfo, objects: Sequence[TrackedObject] = ONE_OBJECT) -> None:
        super().__init__(path, info, objects)
        self._writer = VideoWriter.prores4444(path, info)

    def _write(self, frame: Frame, masks: np.ndarray, scores: tuple[float, ...]) -> None:
        rgba = np.empty((*masks.shape[1:], 4), dtype=np.uint8)
        rgba[..., :3] = frame.image
        rgba[..., 3] = union(masks) * np.uint8(255)
        self._writer.write(rgba, frame.index)
