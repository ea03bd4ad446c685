"""Render the example recording: a head camera and a fixed camera watching one object, plus its seed mask.

    python examples/make_example.py            # writes examples/ego.mp4, exo.mp4, ego_mask.png

ego.mp4: 640×480, 30 fps, 4 s, with a stereo AAC tone (to show that redacted videos keep audio).
exo.mp4: 960×540, 25 fps, 4 s. ego_mask.png: the object on frame 0 of ego.mp4.
The scene is procedural (vggts_cli/synth/scene.py, seed 0), so the files are reproducible and license-free.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from vggts_cli.synth.record import encode_camera
from vggts_cli.synth.scene import Scene, ego_exo_cameras


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    scene = Scene.generate(args.seed)
    ego, exo = ego_exo_cameras(scene.duration)
    args.out.mkdir(parents=True, exist_ok=True)
    encode_camera(args.out / "ego.mp4", scene, ego, audio=True)
    encode_camera(args.out / "exo.mp4", scene, exo)
    _, mask = scene.render(ego, 0)
    cv2.imwrite(str(args.out / "ego_mask.png"), mask.astype(np.uint8) * 255)
    print(f"wrote {args.out / 'ego.mp4'}, {args.out / 'exo.mp4'}, {args.out / 'ego_mask.png'}")


if __name__ == "__main__":
    main()
