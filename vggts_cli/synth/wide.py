"""The widened look: what another renderer and real cameras do beyond our training generator's ranges.

Validation that mirrors the training generator flatters every engine tuned on it. A widened pair keeps the
rig's scene layout (synth/rig.py) but is seen through cameras the generator never trains with: object sizes
beyond its range (far smaller and larger), camera distances that widen the scale gap, lens distortion,
uneven light (a low-frequency illumination field, vignetting, a cast shadow), another tone curve, motion
blur, stronger noise and JPEG compression. The masks follow every geometric change, so they stay exact.

Everything is drawn from the pair's own random stream: a widened pair is as deterministic as a plain one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# The rig draws the ego object's width from EGO_FRACTION = (0.10, 0.45) of the frame and the exo/ego scale
# ratio from the tier's range; a widened pair draws from these instead.
EGO_FRACTION = (0.05, 0.6)
RATIO_STRETCH = (0.8, 1.5)  # the tier's scale ratio × this: the exo camera farther (or nearer) than trained


@dataclass(frozen=True)
class Look:
    """One camera's departures from the generator: radial lens distortion `k1` (either sign, normalised by
    the half diagonal), illumination field strength, vignetting, a cast shadow's darkness (0 =
    none), gamma, motion-blur length (fraction of the width), noise sigma (levels) and JPEG quality."""

    k1: float
    light: float
    vignette: float
    shadow: float
    gamma: float
    motion: float
    noise: float
    quality: int


def sample_look(rng: np.random.Generator) -> Look:
    """A random camera look, mostly outside what the generator's own photometry does."""
    return Look(
        k1=float(rng.uniform(-0.3, 0.1)),
        light=float(rng.uniform(0.2, 0.6)),
        vignette=float(rng.uniform(0.0, 0.5)),
        shadow=float(rng.uniform(0.3, 0.6)) if rng.random() < 0.5 else 0.0,
        gamma=float(math.exp(rng.uniform(-0.4, 0.4))),
        motion=float(rng.uniform(0.0, 0.012)) if rng.random() < 0.4 else 0.0,
        noise=float(rng.uniform(2.0, 10.0)),
        quality=int(rng.integers(35, 91)),
    )


def apply_look(
    rng: np.random.Generator, look: Look, image: np.ndarray, masks: list[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """`image` (H, W, 3) uint8 and its `masks` (H, W) bool as `look`'s camera records them."""
    height, width = image.shape[:2]
    map_x, map_y = _distortion_maps(look.k1, height, width)
    image = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    masks = [
        cv2.remap(m.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderValue=0.0) >= 0.5 for m in masks
    ]
    gain = _illumination(rng, look, height, width)
    linear = (image.astype(np.float32) / 255.0) ** look.gamma * gain[..., None]
    picture = np.clip(linear * 255.0, 0, 255).astype(np.uint8)
    if look.motion > 0:
        picture = _motion_blur(picture, max(3, round(look.motion * width)), rng.uniform(0, math.pi))
    noise = rng.normal(0.0, look.noise, picture.shape).astype(np.float32)
    picture = np.clip(picture.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, look.quality])
    assert ok, "JPEG encoding of an in-memory image cannot fail"
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED), masks


def _distortion_maps(k1: float, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel of a lens with radial distortion `k1` samples the undistorted image: two
    (H, W) float32 maps. The output is rescaled so the frame's corners stay in view (no empty borders)."""
    ys, xs = np.indices((height, width), dtype=np.float32)
    cx, cy, half = (width - 1) / 2, (height - 1) / 2, math.hypot(width, height) / 2
    u, v = (xs - cx) / half, (ys - cy) / half
    factor = 1.0 + k1 * (u * u + v * v)
    corner = 1.0 + k1  # the factor at a corner (radius 1)
    fit = min(1.0, 1.0 / corner) if k1 > 0 else 1.0
    return (cx + u * factor * fit * half).astype(np.float32), (cy + v * factor * fit * half).astype(
        np.float32
    )


def _illumination(rng: np.random.Generator, look: Look, height: int, width: int) -> np.ndarray:
    """(H, W) float32 gain: a smooth random light field, vignetting and an optional soft shadow."""
    coarse = rng.normal(0.0, 1.0, (4, 6)).astype(np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    gain = np.exp(look.light * field / max(float(np.abs(coarse).max()), 1e-6))
    ys, xs = np.indices((height, width), dtype=np.float32)
    radius = np.hypot((xs - width / 2) / (width / 2), (ys - height / 2) / (height / 2)) / math.sqrt(2)
    gain *= 1.0 - look.vignette * radius**2
    if look.shadow > 0:
        shadow = np.zeros((height, width), np.float32)
        centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        axes = (int(rng.uniform(0.15, 0.4) * width), int(rng.uniform(0.15, 0.4) * height))
        cv2.ellipse(shadow, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        shadow = cv2.GaussianBlur(shadow, (0, 0), 0.03 * width)
        gain *= 1.0 - look.shadow * shadow
    return gain.astype(np.float32)


def _motion_blur(image: np.ndarray, length: int, angle: float) -> np.ndarray:
    """`image` blurred along a line of `length` px at `angle` radians."""
    kernel = np.zeros((length, length), np.float32)
    c, s, mid = math.cos(angle), math.sin(angle), (length - 1) / 2
    cv2.line(
        kernel,
        (round(mid - c * mid), round(mid - s * mid)),
        (round(mid + c * mid), round(mid + s * mid)),
        1.0,
        1,
    )
    return cv2.filter2D(image, -1, kernel / kernel.sum())
