"""Short synchronized recordings rendered from the procedural scene, with their exact masks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from media import make_video

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

    def propagate_args(self, mask: Path, *options: str, engine: str = "classic", adapt: int = 0) -> list[str]:
        """`vggts propagate` over this recording (ego = src, exo = dst) with `mask` and `engine` (the fast,
        weight-free classic one unless told), plus `options`; the learned engine tunes itself to the mask
        for `adapt` steps (none unless told: a test of something else need not wait for it)."""
        src, dst = (str(v) for v in self.videos)
        tuning = ["--adapt", str(adapt)] if engine == "vggts" else []
        args = ["--src", src, "--dst", dst, "--mask", str(mask), "--engine", engine, *tuning]
        return ["propagate", *args, *options]


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
    ego, exo = _rig(seconds, scale, ego_fps, exo_fps, exo_start)
    folder.mkdir(parents=True, exist_ok=True)
    videos = (folder / "ego.mp4", folder / "exo.mp4")
    encode_camera(videos[0], scene, ego, audio=audio)
    encode_camera(videos[1], scene, exo, file_start=exo_file_start)
    return Recording(scene, (ego, exo), videos)


def _rig(
    seconds: float, scale: float, ego_fps: Fraction, exo_fps: Fraction, exo_start: float
) -> tuple[CameraPath, CameraPath]:
    """The example's ego and exo cameras at `scale`, filming `seconds`."""

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
    return scaled(ego, ego_fps), scaled(exo, exo_fps, start=exo_start)


@dataclass(frozen=True)
class TiledRecording:
    """Several scenes side by side in every frame of both cameras: object k (of scene k) lives in tile k, so
    each object's mask is exact in every frame."""

    scenes: tuple[Scene, ...]
    cameras: tuple[CameraPath, CameraPath]  # one tile's ego and exo
    videos: tuple[Path, Path]

    def truth(self, cam: int, obj: int, index: int) -> np.ndarray:
        """(H, W) bool: object `obj`'s exact mask in frame `index` of camera `cam` (0 ego, 1 exo)."""
        tiles = [np.zeros((c.height, c.width), bool) for c in [self.cameras[cam]] * len(self.scenes)]
        tiles[obj] = self.scenes[obj].render(self.cameras[cam], index)[1]
        return np.hstack(tiles)

    def label_png(self, path: Path, ids: Sequence[int], index: int = 0) -> Path:
        """The ego frame `index` as a label map: object k holds ids[k]."""
        labels = np.zeros(self.truth(0, 0, index).shape, np.uint8)
        for obj, value in enumerate(ids):
            labels[self.truth(0, obj, index)] = value
        cv2.imwrite(str(path), labels)
        return path


def make_tiled_recording(
    folder: Path, objects: int, seconds: float = 1.0, scale: float = 0.3
) -> TiledRecording:
    """`objects` scenes (seeds 0, 1, …) side by side, in the example's rig at `scale`."""
    scenes = tuple(Scene.generate(seed, duration=seconds) for seed in range(objects))
    cameras = _rig(seconds, scale, Fraction(30), Fraction(25), 0.0)
    folder.mkdir(parents=True, exist_ok=True)
    videos = (folder / "ego.mp4", folder / "exo.mp4")
    for video, camera in zip(videos, cameras, strict=True):

        def tiles(index: int, width: int, height: int, camera: CameraPath = camera) -> np.ndarray:
            return np.hstack([scene.render(camera, index)[0] for scene in scenes])

        make_video(
            video,
            width=camera.width * objects,
            height=camera.height,
            fps=camera.fps,
            frames=camera.num_frames,
            start=camera.start,
            pattern=tiles,
        )
    return TiledRecording(scenes, cameras, videos)
