"""Test videos encoded with PyAV, with content that names its own frame, and ffprobe to check files.

`pattern(i, w, h)` draws frame `i`: the top quarter holds `i` as 12 binary blocks (white = 1, most
significant on the left) and the rest is a dark blue field with a red bar that moves 3 px a frame.
`read_index(image)` reads the number back, so a test can tell which frame a decoded image is and that it
is upright (a turned or mirrored image does not read back as its own index).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vggts_cli.video.writer import x264_options

_LAYOUTS = {1: "mono", 2: "stereo"}
BITS = 12  # frame numbers up to 4095
SAMPLE_RATE = 48_000
_AUDIO_CODECS = {"aac": "aac", "opus": "libopus", "pcm": "pcm_s16le"}
HAVE_FFPROBE = shutil.which("ffprobe") is not None
needs_ffprobe = pytest.mark.skipif(not HAVE_FFPROBE, reason="ffprobe (Debian ffmpeg) not installed")

Pattern = Callable[[int, int, int], np.ndarray]


def pattern(index: int, width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8 RGB image of frame `index`."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = (30, 40, 150)
    band = max(height // 4, 2)
    block = width // BITS
    image[:band] = 0
    for bit in range(BITS):
        if index >> (BITS - 1 - bit) & 1:
            image[:band, bit * block : (bit + 1) * block] = 255
    x = (3 * index) % width
    image[band:, x : x + 4] = (230, 20, 20)
    return image


def read_index(image: np.ndarray) -> int:
    """The frame number drawn by `pattern`, read from the centres of the top band's blocks."""
    height, width = image.shape[:2]
    band, block = max(height // 4, 2), width // BITS
    rows = image[band // 4 : max(band - band // 4, band // 4 + 1)]
    value = 0
    for bit in range(BITS):
        centre = rows[:, bit * block + block // 4 : (bit + 1) * block - block // 4].mean()
        value = value << 1 | int(centre > 128)
    return value


def frame_times(
    frames: int, fps: Fraction = Fraction(30), *, vfr: bool = False, start: float = 0.0
) -> np.ndarray:
    """(frames,) seconds at which `make_video` shows each frame (before container rounding).

    VFR durations cycle through 0.5, 1 and 1.5 frame periods, so the average rate stays `fps`.
    """
    steps = np.array([0.5, 1.0, 1.5])[np.arange(frames) % 3] if vfr else np.ones(frames)
    return start + np.concatenate([[0.0], np.cumsum(steps[:-1])]) / float(fps)


def make_video(
    path: Path,
    *,
    width: int = 96,
    height: int = 64,
    fps: Fraction = Fraction(30),
    frames: int = 30,
    audio: bool | str = False,
    rotation: int = 0,
    codec: str = "libx264",
    vfr: bool = False,
    start: float = 0.0,
    pattern: Pattern = pattern,
    gop: int = 10,
    bframes: int = 2,
    channels: int = 1,
) -> Path:
    """Encode a test video; the container comes from `path`'s suffix.

    width/height: display size. audio: False, True (= "aac"), "aac", "opus" or "pcm" (16-bit): a 440 Hz
    tone as long as the video. rotation: clockwise degrees a player turns the stored frames
    (display-matrix metadata); the stored frames are turned the other way so the displayed video is
    upright. vfr: uneven frame durations (see `frame_times`). start: first frame's time in seconds.
    gop/bframes: keyframe interval and B-frames, so that seeks and frame reordering are exercised.
    channels: of the tone (1 mono, 2 stereo).
    """
    path = Path(path)
    fps = Fraction(fps)
    if path.suffix == ".avi" and vfr:
        raise ValueError("AVI stores one frame rate: no VFR")
    # AVI counts frames; elsewhere a 90 kHz clock holds uneven durations and offsets exactly.
    time_base = 1 / fps if path.suffix == ".avi" else Fraction(1, 90_000)
    times = frame_times(frames, fps, vfr=vfr, start=start)
    coded_w, coded_h = (height, width) if rotation in (90, 270) else (width, height)
    with av.open(str(path), "w") as container:
        options = x264_options(crf=12, preset="medium") if codec == "libx264" else {}
        video = container.add_stream(codec, rate=fps, options=options)
        video.width, video.height = coded_w, coded_h
        video.pix_fmt = "yuv444p" if width % 2 or height % 2 else "yuv420p"
        if codec == "mjpeg":
            video.color_range = 2  # JPEG (full) range: the only one FFmpeg's MJPEG encoder takes
        video.time_base = video.codec_context.time_base = time_base  # the encoder's own clock too
        video.codec_context.gop_size = gop
        video.codec_context.max_b_frames = bframes
        if rotation:
            video.set_display_rotation(-rotation)  # FFmpeg's matrix angle is counterclockwise
        sound = None
        if audio:
            sound = container.add_stream(_AUDIO_CODECS["aac" if audio is True else audio], rate=SAMPLE_RATE)
            sound.layout = _LAYOUTS[channels]
        for i, t in enumerate(times):
            image = np.ascontiguousarray(np.rot90(pattern(i, width, height), k=rotation // 90))
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round(t / time_base), time_base
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None:
            _add_tone(container, sound, start, float(times[-1]) + 1 / float(fps))
    return path


def _add_tone(
    container: av.container.OutputContainer, stream: av.AudioStream, start: float, end: float
) -> None:
    """A 440 Hz tone from `start` to `end` seconds, the same in every channel of `stream`'s layout."""
    block, channels = 960, stream.layout.nb_channels
    for offset in range(round(start * SAMPLE_RATE), round(end * SAMPLE_RATE), block):
        t = (offset + np.arange(block)) / SAMPLE_RATE
        samples = np.repeat((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), channels)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout=stream.layout.name)
        frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, offset, Fraction(1, SAMPLE_RATE)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def ffprobe(path: Path, *args: str) -> dict:
    """ffprobe's JSON report on `path` (an FFmpeg build independent of PyAV); skips the test without it.

    `args` choose what it shows, e.g. "-show_entries", "stream=codec_name:format=duration".
    """
    if not HAVE_FFPROBE:
        pytest.skip("ffprobe (Debian ffmpeg) not installed")
    cmd = ["ffprobe", "-v", "error", *args, "-of", "json", str(path)]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def ffprobe_streams(path: Path, entries: str, select: str | None = None, count: bool = False) -> list[dict]:
    """`entries` ("codec_name,width") of each stream, or of those matching `select` ("v:0", "a").

    count: decode and count frames and packets (`nb_read_frames`, `nb_read_packets`). Fields ffprobe
    does not know for a stream (N/A) are left out.
    """
    args = ["-show_entries", f"stream={entries}"]
    if select is not None:
        args += ["-select_streams", select]
    if count:
        args += ["-count_frames", "-count_packets"]
    return ffprobe(path, *args)["streams"]
