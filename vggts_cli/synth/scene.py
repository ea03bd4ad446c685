"""A small procedural world seen by several cameras, with the exact mask of one object in every frame.

The world is a textured ground plane (world units = texture pixels) with a textured object lying on it that
moves along a smooth path, plus a look-alike distractor. A camera maps the plane to its image with a
homography that may change over time (a head camera wobbles and walks; a fixed camera does not). Rendering
is a perspective warp, so masks are exact, and views can differ strongly in viewpoint and scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np


def texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A colourful multi-scale texture (H, W, 3) uint8: smooth noise plus random shapes.

    Smooth enough to compress well, detailed enough for feature matching and optical flow.
    """
    img = np.zeros((height, width, 3), np.float32)
    for scale, weight in ((64, 0.5), (16, 0.3), (4, 0.2)):
        small = rng.random((height // scale + 2, width // scale + 2, 3)).astype(np.float32)
        img += weight * cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    for _ in range(height * width // 4000):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.5:
            cv2.circle(img, centre, int(rng.integers(3, 14)), colour, -1, cv2.LINE_AA)
        else:
            size = rng.integers(4, 20, 2)
            cv2.rectangle(img, centre, (centre[0] + int(size[0]), centre[1] + int(size[1])), colour, -1)
    return img


@dataclass(frozen=True)
class CameraPath:
    """A camera: image size, frame rate, start time, and its world→image homography over time.

    The homography is built from a look-at point on the plane (cx, cy), a zoom (image px per world px),
    an in-plane rotation and a perspective tilt, each varying as `base + amplitude · sin(2π f t + phase)`.
    """

    name: str
    width: int
    height: int
    fps: Fraction
    num_frames: int
    centre: tuple[float, float]
    zoom: float
    angle: float = 0.0  # radians
    tilt: tuple[float, float] = (0.0, 0.0)  # perspective terms (per world px)
    wobble: float = 0.0  # amplitude of the head-camera motion, world px
    drift: tuple[float, float] = (0.0, 0.0)  # walking speed, world px per second
    start: float = 0.0  # presentation time of frame 0, seconds

    def time(self, index: int) -> float:
        return self.start + index / float(self.fps)

    def homography(self, t: float) -> np.ndarray:
        """(3, 3) world-plane → image homography at time t (seconds)."""
        cx = self.centre[0] + self.drift[0] * t + self.wobble * np.sin(2 * np.pi * 0.7 * t)
        cy = self.centre[1] + self.drift[1] * t + self.wobble * 0.6 * np.sin(2 * np.pi * 0.5 * t + 1.0)
        angle = self.angle + (0.08 * np.sin(2 * np.pi * 0.4 * t) if self.wobble else 0.0)
        zoom = self.zoom * (1.0 + (0.06 * np.sin(2 * np.pi * 0.3 * t) if self.wobble else 0.0))
        to_centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], np.float64)
        c, s = np.cos(angle), np.sin(angle)
        rotate_zoom = np.array([[zoom * c, -zoom * s, 0], [zoom * s, zoom * c, 0], [0, 0, 1]])
        perspective = np.array([[1, 0, 0], [0, 1, 0], [self.tilt[0], self.tilt[1], 1]])
        to_image = np.array([[1, 0, self.width / 2], [0, 1, self.height / 2], [0, 0, 1]])
        return to_image @ perspective @ rotate_zoom @ to_centre


@dataclass
class Scene:
    """The plane texture, the object (texture + shape) and its path, and a look-alike distractor."""

    ground: np.ndarray  # (Hw, Ww, 3) uint8
    object_rgb: np.ndarray  # (h, w, 3) uint8
    object_mask: np.ndarray  # (h, w) bool
    path: tuple[tuple[float, float], tuple[float, float]]  # world positions at t=0 and t=duration
    duration: float
    distractor_at: tuple[float, float]

    @classmethod
    def generate(cls, seed: int, size: int = 1024, object_size: int = 90, duration: float = 4.0) -> Scene:
        rng = np.random.default_rng(seed)
        ground = texture(rng, size, size)
        obj = texture(rng, object_size, object_size)
        obj = (0.4 * obj + 0.6 * np.array([220, 60, 40], np.float32)).astype(np.uint8)  # a red-ish thing
        mask = np.zeros((object_size, object_size), np.uint8)
        axes = (object_size // 2 - 2, object_size // 3)
        cv2.ellipse(mask, (object_size // 2, object_size // 2), axes, 20, 0, 360, 1, -1)
        cv2.rectangle(mask, (object_size // 2 - 8, 4), (object_size // 2 + 8, object_size // 2), 1, -1)
        mid = size / 2
        start = (mid - 80 + rng.uniform(-20, 20), mid + rng.uniform(-20, 20))
        end = (mid + 80 + rng.uniform(-20, 20), mid + 40 + rng.uniform(-20, 20))
        distractor = (mid + rng.uniform(-250, -180), mid + rng.uniform(150, 220))
        return cls(ground, obj, mask.astype(bool), (start, end), duration, distractor)

    def object_position(self, t: float) -> tuple[float, float]:
        a = float(np.clip(t / self.duration, 0.0, 1.0))
        a = 0.5 - 0.5 * np.cos(np.pi * a)  # ease in and out
        (x0, y0), (x1, y1) = self.path
        return x0 + a * (x1 - x0), y0 + a * (y1 - y0)

    def world(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """The plane at time t with the object and the distractor pasted: (image, object mask)."""
        img = self.ground.copy()
        mask = np.zeros(img.shape[:2], bool)
        h, w = self.object_mask.shape
        dx, dy = (int(round(v)) for v in self.distractor_at)
        # The distractor: the same shape and colour family, a different texture (flipped) — a look-alike.
        region = img[dy : dy + h, dx : dx + w]
        region[self.object_mask] = self.object_rgb[::-1, ::-1][self.object_mask]
        x, y = (int(round(v)) for v in self.object_position(t))
        region = img[y : y + h, x : x + w]
        region[self.object_mask] = self.object_rgb[self.object_mask]
        mask[y : y + h, x : x + w] = self.object_mask
        return img, mask

    def render(self, camera: CameraPath, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame `index` of `camera`: (image (H, W, 3) uint8 RGB, mask (H, W) bool)."""
        t = camera.time(index)
        world, mask = self.world(t)
        hom = camera.homography(t)
        size = (camera.width, camera.height)
        img = cv2.warpPerspective(world, hom, size, flags=cv2.INTER_LINEAR, borderValue=(40, 40, 40))
        m = cv2.warpPerspective(mask.astype(np.uint8) * 255, hom, size, flags=cv2.INTER_LINEAR)
        return img, m >= 128


def ego_exo_cameras(duration: float = 4.0) -> tuple[CameraPath, CameraPath]:
    """The example rig: a close, moving head camera (640×480, 30 fps), a wide fixed one (960×540, 25 fps)."""
    ego = CameraPath(
        "ego",
        640,
        480,
        Fraction(30),
        int(30 * duration),
        centre=(500, 530),
        zoom=1.7,
        angle=0.3,
        tilt=(0.0, 0.0006),
        wobble=25.0,
        drift=(6.0, 0.0),
    )
    # The fixed camera: centre (512, 512), zoom 0.85, angle -0.5, tilt (0.0004, -0.0003); no wobble, no drift.
    exo = CameraPath(
        "exo", 960, 540, Fraction(25), int(25 * duration), (512, 512), 0.85, -0.5, (0.0004, -0.0003)
    )
    return ego, exo
