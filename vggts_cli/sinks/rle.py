"""masks.json: one COCO RLE record per frame, streamed to disk so memory stays flat on long videos."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np

from vggts_cli.fsutil import PartialOutput
from vggts_cli.masks import rle
from vggts_cli.sinks.base import Sink
from vggts_cli.video.reader import Frame, VideoInfo


class RleSink(Sink):
    """Writes `{"video", "width", "height", "fps", "num_frames", "frames": [{"frame", "pts", "score",
    "segmentation"}]}`; `pts` is in seconds, `fps` an exact "num/den" string, and an absent object is an
    empty (all-zero) RLE, never null.
    """

    def __init__(self, path: Path, info: VideoInfo) -> None:
        super().__init__(path, info)
        self._output = PartialOutput(path)
        header = {
            "video": str(info.path),
            "width": int(info.width),
            "height": int(info.height),
            "fps": f"{info.fps.numerator}/{info.fps.denominator}",
            "num_frames": int(info.num_frames),
        }
        self._file = self._output.path.open("w", encoding="utf-8")
        # The header is the object without its closing brace; records follow inside "frames".
        self._file.write(json.dumps(header)[:-1] + ', "frames": [')

    def _write(self, frame: Frame, mask: np.ndarray, score: float) -> None:
        record = {
            "frame": int(frame.index),
            "pts": float(frame.time),
            "score": round(score, 4),
            "segmentation": rle.encode(mask),
        }
        self._file.write(("\n" if frame.index == 0 else ",\n") + json.dumps(record))

    def _finish(self) -> None:
        self._file.write("\n]}\n")
        self._file.close()

    def _commit(self) -> None:
        self._output.commit()

    def abort(self) -> None:
        with contextlib.suppress(OSError):  # a full disk refuses the buffered tail: the file goes anyway
            self._file.close()
        self._output.discard()
