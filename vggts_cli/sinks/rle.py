"""masks.json: one COCO RLE record per frame and object, streamed to disk so memory stays flat on long
videos."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vggts_cli.fsutil import PartialOutput
from vggts_cli.masks import rle
from vggts_cli.masks.objects import ONE_OBJECT, TrackedObject
from vggts_cli.sinks.base import Sink
from vggts_cli.video.reader import Frame, VideoInfo


class RleSink(Sink):
    """Writes `{"video", "width", "height", "fps", "num_frames", "objects": [{"id", "name"}], "frames":
    [{"frame", "pts", "object", "score", "segmentation"}]}`: per frame one record per object (in the order
    of "objects"; "object" is its id); `pts` is in seconds, `fps` an exact "num/den" string, and an absent
    object is an empty (all-zero) RLE, never null. Objects never overlap.
    """

    def __init__(self, path: Path, info: VideoInfo, objects: Sequence[TrackedObject] = ONE_OBJECT) -> None:
        super().__init__(path, info, objects)
        self._output = PartialOutput(path)
        header = {
            "video": str(info.path),
            "width": int(info.width),
            "height": int(info.height),
            "fps": f"{info.fps.numerator}/{info.fps.denominator}",
            "num_frames": int(info.num_frames),
            "objects": [{"id": o.id, "name": o.name} for o in self.objects],
        }
        self._file = self._output.path.open("w", encoding="utf-8")
        # The header is the object without its closing brace; records follow inside "frames".
        self._file.write(json.dumps(header)[:-1] + ', "frames": [')

    def _write(self, frame: Frame, masks: np.ndarray, scores: tuple[float, ...]) -> None:
        for n, (obj, mask, score) in enumerate(zip(self.objects, masks, scores, strict=True)):
            record = {
                "frame": int(frame.index),
                "pts": float(frame.time),
                "object": obj.id,
                "score": round(score, 4),
                "segmentation": rle.encode(mask),
            }
            first = frame.index == 0 and n == 0
            self._file.write(("\n" if first else ",\n") + json.dumps(record))

    def _finish(self) -> None:
        self._file.write("\n]}\n")
        self._file.close()

    def _commit(self) -> None:
        self._output.commit()

    def abort(self) -> None:
        with contextlib.suppress(OSError):  # a full disk refuses the buffered tail: the file goes anyway
            self._file.close()
        self._output.discard()
