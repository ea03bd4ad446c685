"""masks/000000.png ...: one single-channel PNG per frame: 0/255 for a one-object job, else a label map
holding each object's id (8-bit, or 16-bit for ids over 255). Frame i (0-based) is file number
`start_number + i`, at least six digits (`--start-number`, default 0)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vggts_cli.masks.io import save_label_png, save_mask_png
from vggts_cli.masks.objects import ONE_OBJECT, TrackedObject, label_map
from vggts_cli.sinks.base import FolderSink
from vggts_cli.video.reader import Frame, VideoInfo


def frame_name(start_number: int, index: int, suffix: str) -> str:
    """The file name of frame `index` in an image-sequence output: `001001.png` for 1001 + 0."""
    return f"{start_number + index:06d}{suffix}"


class PngSequenceSink(FolderSink):
    """Fills a partial folder (`masks.part`) and renames it to `path` when every frame is in."""

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        objects: Sequence[TrackedObject] = ONE_OBJECT,
        start_number: int = 0,
    ) -> None:
        super().__init__(path, info, objects)
        self.start_number = start_number

    def _write(self, frame: Frame, masks: np.ndarray, scores: tuple[float, ...]) -> None:
        path = self._output.path / frame_name(self.start_number, frame.index, ".png")
        if len(self.objects) == 1:
            save_mask_png(path, masks[0])
        else:
            save_label_png(path, label_map(masks, self.objects))
