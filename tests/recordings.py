"""Short synchronized recordings rendered from the procedural scene, with their exact masks."""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from vggts_cli.synth.record import encode_camera
from vggts_cli.synth.scene import CameraPath, Scene, ego_exo_cameras


@dataclass(frozen=True)
class Recording:
    scene: Scene
    cameras: tuple[CameraPath, ...]
    videos: tuple[Path, ...]

    def truth(self, cam: int, index: int) -> np.ndarray:
        return self.scene.render(self.cameras[cam], index)[1]

    def seed_png(self, path: Path, index: int = 0) -> Path:
        cv2.imwrite(str(path), self.truth(0, index).astype(np.uint8) * 255)
        return path

    def propagate_args(self, mask: Path, *options: str, engine: str = "classic") -> list[str]:
        """`vggts propagate` over this recording (ego = src, exo = dst) with `mask` and `engine` (the fast,
        weight-free classic one unless told), plus `options`."""
        src, dst = (str(v) for v in self.videos)
        return ["propagate", "--src", src, "--dst", dst, "--mask", str(mask), "--engine", engine, *options]


def make_recording(
    folder: Path,
    seconds: float = 1.0,
    scale: float = 0.5,
    ego_fps: Fraction = Fraction(30),
    exo_fps: Fraction = Fraction(25),
    exo_start: float = 0.0,
    audio: bool = False,
    exo_file_start: float | None = None,
) -> Recording:
    """The example rig (ego + exo), `seconds` long, sizes scaled by `scale`; exo may start later."""
    scene = Scene.generate(0, duration=seconds)

    def scaled(camera: CameraPath, fps: Fraction, **fields) -> CameraPath:
        """`camera` at `scale` (even sizes), filming `seconds` at `fps`."""
        return replace(
            camera,
            width=int(camera.width * scale) // 2 * 2,
            height=int(camera.height * scale) // 2 * 2,
            zoom=camera.zoom * scale,
            fps=fps,
            num_frames=round(seconds * fps),
            **fields,
        )

    ego, exo = ego_exo_cameras(seconds)
    ego, exo = scaled(ego, ego_fps), scaled(exo, exo_fps, start=exo_start)
    folder.mkdir(parents=True, exist_ok=True)
    videos = (folder / "ego.mp4", folder / "exo.mp4")
    encode_camera(videos[0], scene, ego, audio=audio)
    encode_camera(videos[1], scene, exo, file_start=exo_file_start)
    return Recording(scene, (ego, exo), videos)
