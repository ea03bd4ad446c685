"""Render the example recording: a head camera and a fixed camera watching one object, plus its seed mask.

    python examples/make_example.py            # writes examples/ego.mp4, exo.mp4, ego_mask.png

ego.mp4: 640×480, 30 fps, 4 s, with a stereo AAC tone (to show that redacted videos keep audio).
exo.mp4: 960×540, 25 fps, 4 s. ego_mask.png: the object on frame 0 of ego.mp4.
The scene is procedural (vggts_cli/synth/scene.py, seed 0), so the files are reproducible and license-free.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from vggts_cli.synth.scene import CameraPath, Scene, ego_exo_cameras


def encode(path: Path, scene: Scene, camera: CameraPath, audio: bool) -> None:
    """Encode every frame of `camera` as H.264 (crf 23) in mp4, optionally with a 440 Hz AAC tone."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=camera.fps)
        video.width, video.height, video.pix_fmt = camera.width, camera.height, "yuv420p"
        video.options = {"crf": "23", "preset": "medium", "x264-params": "log-level=error"}
        sound = container.add_stream("aac", rate=48000, layout="stereo") if audio else None
        for i in range(camera.num_frames):
            image, _ = scene.render(camera, i)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            seconds = camera.num_frames / float(camera.fps)
            t = np.arange(int(48000 * seconds)) / 48000
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, len(tone), 1024):
                chunk = np.stack([tone[start : start + 1024]] * 2)
                samples = np.ascontiguousarray(chunk)
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
                frame.sample_rate = 48000
                frame.pts = start
                frame.time_base = Fraction(1, 48000)
                container.mux(sound.encode(frame))
            container.mux(sound.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    scene = Scene.generate(args.seed)
    ego, exo = ego_exo_cameras(scene.duration)
    args.out.mkdir(parents=True, exist_ok=True)
    encode(args.out / "ego.mp4", scene, ego, audio=True)
    encode(args.out / "exo.mp4", scene, exo, audio=False)
    _, mask = scene.render(ego, 0)
    cv2.imwrite(str(args.out / "ego_mask.png"), mask.astype(np.uint8) * 255)
    print(f"wrote {args.out / 'ego.mp4'}, {args.out / 'exo.mp4'}, {args.out / 'ego_mask.png'}")


if __name__ == "__main__":
    main()
