"""alpha/<object>/000000.png …: one matte sequence per object, for compositing (`--write alpha`).

Each file is one channel: that object's coverage of the frame, as straight (unassociated) alpha: it is
multiplied into no colour, so it goes with the untouched plate (or matte.mov's RGB). Frame i (0-based) is
file number `--start-number` + i, at least six digits. Two formats (`--alpha-format`):

- `png`: 16-bit greyscale PNG, 0 outside the object and 65535 inside (the masks are binary);
- `exr`: OpenEXR, half float, 0.0 / 1.0, ZIP compression (16 lines), data window = display window = the
  frame. Its one channel is named Y: FFmpeg's EXR encoder (PyAV), which writes it, names a single channel
  so and has no alpha-only layout, and FFmpeg's decoder cannot read a file whose only channel is A.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vggts_cli.errors import UsageError
from vggts_cli.masks.io import save_label_png
from vggts_cli.masks.objects import ONE_OBJECT, TrackedObject
from vggts_cli.sinks.base import AlphaFormat, FolderSink
from vggts_cli.sinks.sequence import frame_name
from vggts_cli.video.reader import Frame, VideoInfo

OPAQUE_16 = np.uint16(65535)


def check_exr_encoder() -> None:
    """Raise UsageError if this FFmpeg (PyAV's) has no OpenEXR encoder."""
    try:
        av.codec.Codec("exr", "w")
    except (av.FFmpegError, ValueError):  # UnknownCodecError is a ValueError
        raise UsageError(
            "--alpha-format exr: this FFmpeg (PyAV) has no OpenEXR encoder; use --alpha-format png"
        ) from None


def exr_bytes(alpha: np.ndarray) -> bytes:
    """(H, W) coverage in [0, 1] -> one OpenEXR file: half float, a single channel Y, ZIP compression."""
    context = av.codec.CodecContext.create("exr", "w")
    context.width, context.height = alpha.shape[1], alpha.shape[0]
    context.pix_fmt = "grayf32le"
    context.time_base = Fraction(1, 1)
    context.thread_count = 1  # one picture: no frame threads (which would also hold packets back)
    context.options = {"format": "half", "compression": "zip16"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(alpha, dtype=np.float32), format="grayf32le")
    return b"".join(bytes(p) for p in [*context.encode(frame), *context.encode(None)])


class AlphaSequenceSink(FolderSink):
    """Fills a partial folder (`alpha.part/<object>/…`) and renames it to `path` when every frame is in."""

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        objects: Sequence[TrackedObject] = ONE_OBJECT,
        start_number: int = 0,
        file_format: AlphaFormat | str = AlphaFormat.png,
    ) -> None:
        self.format = AlphaFormat(file_format)
        if self.format is AlphaFormat.exr:
            check_exr_encoder()
        super().__init__(path, info, objects, subfolders=[obj.name for obj in objects])
        self.start_number = start_number
        self._folders = [self._output.path / obj.name for obj in self.objects]

    def _write(self, frame: Frame, masks: np.ndarray, scores: tuple[float, ...]) -> None:
        name = frame_name(self.start_number, frame.index, f".{self.format.value}")
        for folder, mask in zip(self._folders, masks, strict=True):
            if self.format is AlphaFormat.png:
                save_label_png(folder / name, mask.astype(np.uint16) * OPAQUE_16)
            else:
                (folder / name).write_bytes(exr_bytes(mask.astype(np.float32)))
