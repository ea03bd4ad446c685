"""Encode a procedural scene as camera videos (H.264 mp4, optional AAC tone) with exact ground truth."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vggts_cli.synth.scene import CameraPath, Scene
from vggts_cli.video.writer import x264_options

AUDIO_RATE = 48000


def encode_camera(
    path: Path,
    scene: Scene,
    camera: CameraPath,
    audio: bool = False,
    crf: int = 23,
    file_start: float | None = None,
) -> None:
    """Write every frame of `camera` to `path` (H.264, yuv420p); `audio` adds a 440 Hz stereo AAC tone.

    Frame i shows the scene at camera.time(i) and is stamped at file_start + i / fps in the file; by default
    file_start = camera.start, so a late camera shows up as a start offset. file_start=0 models a camera whose
    own clock starts at zero although it started late (the case `--offset` corrects).
    """
    shift = (camera.start if file_start is None else file_start) - camera.start
    time_base = Fraction(1, camera.fps.numerator * 1000)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=camera.fps)
        video.width, video.height, video.pix_fmt = camera.width, camera.height, "yuv420p"
        video.time_base = time_base
        video.options = x264_options(crf, preset="medium")
        sound = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo") if audio else None
        for i in range(camera.num_frames):
            image, _ = scene.render(camera, i)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = round((camera.time(i) + shift) / time_base)
            frame.time_base = time_base
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            _encode_tone(container, sound, camera.num_frames / float(camera.fps))


def _encode_tone(container: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    t = np.arange(int(AUDIO_RATE * seconds)) / AUDIO_RATE
    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, len(tone), 1024):
        samples = np.ascontiguousarray(np.stack([tone[start : start + 1024]] * 2))
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_RATE)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())
