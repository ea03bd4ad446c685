"""Two-camera videos of the procedural scene (scene.py) in difficulty tiers, with exact per-frame masks.

rig.py's tiers are single ego/exo image pairs; these are videos. Each tier varies scene.py's parameters:

- easy: the bundled example's rig (a head camera that wobbles and walks, a wide fixed camera);
- medium: the object travels 1.6 times as far, the head camera wobbles and walks 1.5 times as much, the fixed
  camera sees it 15 % smaller and more tilted;
- hard: 2.2 times as far (fast motion), a head camera wobbling twice and walking 2.5 times as much (the
  object nears its edge), the fixed camera 30 % smaller and twice as tilted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from vggts_cli.synth.record import encode_camera
from vggts_cli.synth.scene import CameraPath, Scene, ego_exo_cameras


@dataclass(frozen=True)
class SceneTier:
    """How a tier changes the example rig: object travel, head-camera wobble and walk, fixed-camera zoom
    and tilt (multipliers of the example's values)."""

    travel: float
    wobble: float
    drift: float
    exo_zoom: float
    exo_tilt: float


SCENE_TIERS = {
    "easy": SceneTier(travel=1.0, wobble=1.0, drift=1.0, exo_zoom=1.0, exo_tilt=1.0),
    "medium": SceneTier(travel=1.6, wobble=1.5, drift=1.5, exo_zoom=0.85, exo_tilt=1.5),
    "hard": SceneTier(travel=2.2, wobble=2.0, drift=2.5, exo_zoom=0.85, exo_tilt=2.0),
}


@dataclass(frozen=True)
class TierVideos:
    """An encoded recording (ego = cameras[0], the seed camera) and its exact masks."""

    tier: str
    scene: Scene
    cameras: tuple[CameraPath, ...]
    videos: tuple[Path, ...]

    def truth(self, cam: int, index: int) -> np.ndarray:
        """(H, W) bool: the object's visible pixels in frame `index` of camera `cam`."""
        return self.scene.render(self.cameras[cam], index)[1]

    def seed_png(self, path: Path) -> Path:
        """Write the seed camera's frame-0 mask as a 0/255 PNG."""
        cv2.imwrite(str(path), self.truth(0, 0).astype(np.uint8) * 255)
        return path


def tier_rig(
    tier: str, seconds: float = 4.0, scale: float = 1.0, seed: int = 0
) -> tuple[Scene, CameraPath, CameraPath]:
    """The scene and the two cameras of `tier`, `seconds` long, frame sizes scaled by `scale` (even)."""
    if tier not in SCENE_TIERS:
        raise ValueError(f"unknown tier {tier!r}; use one of {', '.join(SCENE_TIERS)}")
    t = SCENE_TIERS[tier]
    scene = Scene.generate(seed, duration=seconds)
    (x0, y0), (x1, y1) = scene.path
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    path = tuple((mx + t.travel * (x - mx), my + t.travel * (y - my)) for x, y in scene.path)
    scene = replace(scene, path=path)
    ego, exo = ego_exo_cameras(seconds)
    ego = replace(ego, wobble=ego.wobble * t.wobble, drift=(ego.drift[0] * t.drift, ego.drift[1] * t.drift))
    exo = replace(exo, zoom=exo.zoom * t.exo_zoom, tilt=(exo.tilt[0] * t.exo_tilt, exo.tilt[1] * t.exo_tilt))

    def scaled(camera: CameraPath) -> CameraPath:
        return replace(
            camera,
            width=int(camera.width * scale) // 2 * 2,
            height=int(camera.height * scale) // 2 * 2,
            zoom=camera.zoom * scale,
            num_frames=round(seconds * camera.fps),
        )

    return scene, scaled(ego), scaled(exo)


def tier_videos(
    folder: Path, tier: str, seconds: float = 4.0, scale: float = 1.0, seed: int = 0
) -> TierVideos:
    """Encode `tier`'s recording to `folder`/ego.mp4 and exo.mp4 (H.264) and return it with its truth."""
    scene, ego, exo = tier_rig(tier, seconds, scale, seed)
    folder.mkdir(parents=True, exist_ok=True)
    videos = (folder / "ego.mp4", folder / "exo.mp4")
    for path, camera in zip(videos, (ego, exo), strict=True):
        encode_camera(path, scene, camera)
    return TierVideos(tier, scene, (ego, exo), videos)
