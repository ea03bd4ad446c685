"""masks/000000.png ...: one single-channel 0/255 PNG per frame, named by source frame index (0-based)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vggts_cli.fsutil import PartialOutput
from vggts_cli.masks.io import save_mask_png
from vggts_cli.sinks.base import Sink
from vggts_cli.video.reader import Frame, VideoInfo


class PngSequenceSink(Sink):
    """Fills a partial folder (`masks.part`) and renames it to `path` when every frame is in."""

    def __init__(self, path: Path, info: VideoInfo) -> None:
        super().__init__(path, info)
        self._output = PartialOutput(path, fresh=True)  # a left-over partial folder: start clean
        self._output.path.mkdir()

    def _write(self, frame: Frame, mask: np.ndarray, score: float) -> None:
        save_mask_png(self._output.path / f"{frame.index:06d}.png", mask)

    def _finish(self) -> None:
        pass  # every frame's PNG is already in the partial folder

    def _commit(self) -> None:
        self._output.commit()

    def abort(self) -> None:
        self._output.discard()
