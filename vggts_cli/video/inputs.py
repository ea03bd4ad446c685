"""A camera's input, a video file or an image sequence: the one place that tells them apart.

`probe_input` gives a `VideoInfo` for either (a `SequenceInfo` for a sequence), `open_camera` the reader
that decodes it (`VideoReader` or `SequenceReader`, one interface), `camera_stem` the name its outputs go
under and `input_bytes` its size on disk.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from vggts_cli.video.reader import VideoInfo, VideoReader, probe
from vggts_cli.video.sequence import (
    DEFAULT_FPS,
    SequenceInfo,
    SequenceReader,
    is_sequence,
    probe_sequence,
    sequence_name,
)


def probe_input(path: Path, fps: Fraction = DEFAULT_FPS) -> VideoInfo:
    """Probe a video file, or the image sequence at `path` (a folder, `plate/%04d.png`, `frames/*.jpg`)
    shown at `fps` frames a second; a video keeps its own timing."""
    return probe_sequence(path, fps) if is_sequence(path) else probe(path)


CameraReader = VideoReader | SequenceReader  # what `open_camera` gives: the same interface for both


def open_camera(info: VideoInfo) -> CameraReader:
    """The reader of a probed input (context manager): `frames(start, stop)`, `frames_reversed(...)`."""
    return SequenceReader(info) if isinstance(info, SequenceInfo) else VideoReader(info)


def camera_stem(path: Path) -> str:
    """A video's file stem (ego.mp4 -> ego), or a sequence's folder name (plate/%04d.png -> plate)."""
    return sequence_name(path) if is_sequence(path) else Path(path).stem


def input_bytes(info: VideoInfo) -> int:
    """The size on disk of the input: the video file, or every frame file of a sequence."""
    if isinstance(info, SequenceInfo):
        return sum(f.stat().st_size for f in info.files)
    return info.path.stat().st_size
