"""Rendered ego/exo pairs of one object on a textured plane, with exact visible masks, in difficulty tiers.

The world is a plane (world units, the target centred at the origin) tiled with photo / procedural textures,
with background clutter, look-alike distractors and the target lying on it. Each camera maps the plane to its
image by a homography: in-plane rotation and zoom about the target, then a perspective tilt about the target's
image position. The ego camera is close, the exo camera wide. A camera renders only the part of the plane it
sees, rasterised at about its own resolution and warped at twice the output size, then area-downscaled, so a
small render looks like a downscaled real frame. Image-space occluders (a hand on an arm) and camera-specific
photometry are added per view.

Everything random is drawn in resolution-free units (world units, fractions of the frame width), so for
frame sizes of the same aspect a small render is a downscaled copy of the large one.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import cv2
import numpy as np

from vggts_cli.synth import wide as wide_look
from vggts_cli.synth.textures import Patch, random_patch, render_patch, sources


@dataclass(frozen=True)
class Tier:
    """How hard a pair is: viewpoint change, scale change, look-alikes, occlusion, leaving the frame."""

    name: str
    rotation_deg: float  # max |relative in-plane rotation| between ego and exo
    tilt: float  # max perspective strength per camera: max |h31 x + h32 y| over the frame (x, y: from target)
    scale_ratio: tuple[float, float]  # object size in ego / in exo, as fractions of each frame's width
    distractors: tuple[int, int]  # look-alike objects on the plane (min, max)
    occluder_prob: float  # chance that one view gets an image-space occluder over part of the object
    max_occlusion: float  # largest fraction of the object an occluder may hide
    leave_prob: (
        float  # chance that the object is cut by the frame edge (partly or wholly outside) in one view
    )
    photometric: float = 0.0  # strength of per-camera gain, white balance, blur and noise differences


TIERS: dict[str, Tier] = {
    "easy": Tier("easy", 15.0, 0.1, (1.0, 1.5), (0, 0), 0.0, 0.0, 0.0, 0.2),
    "medium": Tier("medium", 60.0, 0.25, (1.5, 3.0), (0, 1), 0.3, 0.3, 0.1, 0.5),
    "hard": Tier("hard", 180.0, 0.4, (3.0, 6.0), (2, 3), 0.6, 0.5, 0.2, 1.0),
}


@dataclass(frozen=True)
class RigPair:
    """One rendered ego/exo pair. Masks hold the VISIBLE pixels (occluders removed); a view whose mask is
    empty does not show the object. Homographies are in OpenCV pixel-centre coordinates."""

    ego: np.ndarray  # (He, We, 3) uint8 RGB
    ego_mask: np.ndarray  # (He, We) bool
    exo: np.ndarray  # (Hx, Wx, 3) uint8 RGB
    exo_mask: np.ndarray  # (Hx, Wx) bool
    ego_to_exo: np.ndarray  # (3, 3) float64: ego pixel (x, y, 1) -> exo pixel, for points on the plane
    tier: str
    seed: int
    ego_distractors: np.ndarray  # (He, We) bool, visible pixels of the look-alike distractors
    exo_distractors: np.ndarray  # (Hx, Wx) bool


# Seeds: training uses [0, VALIDATION_BASE); tier i validates on [VALIDATION_BASE + i·SLOT, ... + SLOT).
VALIDATION_BASE = 1 << 32
_VALIDATION_SLOT = 1 << 20

SUPERSAMPLE = 2
EGO_FRACTION = (0.10, 0.45)  # target size in the ego frame, fraction of its width
MIN_EXO_FRACTION = 0.04  # the exo target is never smaller than this fraction of the exo width
TARGET_RADIUS = (0.3, 0.7)  # world units
GROUND_CELL = (3.0, 6.0)  # side of a ground tile, world units
GROUND_GRID = 32  # distinct ground tiles per side before the tiling repeats
RASTER_DENSITY = 1.25  # plane raster px per output px at the target
MAX_RASTER = 4.0  # cap on a plane raster's pixel count, in output frames


def validation_seeds(tier: str, count: int) -> list[int]:
    """`count` fixed seeds of `tier`'s validation pairs, from a range reserved for validation."""
    slot = list(TIERS).index(_tier(tier).name)
    if not 0 <= count <= _VALIDATION_SLOT:
        raise ValueError(f"count must be in [0, {_VALIDATION_SLOT}], got {count}")
    start = VALIDATION_BASE + slot * _VALIDATION_SLOT
    return list(range(start, start + count))


def training_seed(index: int) -> int:
    """The seed of training pair `index`; below VALIDATION_BASE, so never a validation seed."""
    if not 0 <= index < VALIDATION_BASE:
        raise ValueError(f"training pair index must be in [0, 2**32), got {index}")
    return index


def warp_points(hom: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply homography `hom` (3, 3) to points (N, 2); returns (N, 2) float64."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    mapped = points @ hom[:, :2].T + hom[:, 2]
    return mapped[:, :2] / mapped[:, 2:]


def _tier(tier: Tier | str) -> Tier:
    if isinstance(tier, Tier):
        return tier
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; use one of {', '.join(TIERS)}")
    return TIERS[tier]


# ---------------------------------------------------------------------------------------------------------
# The scene: things on the plane and two cameras, all in resolution-free units.


@dataclass(frozen=True)
class _Item:
    """A flat object on the plane: the union of `polygons` (world units, relative to `centre`), textured with
    `patch` over its bounding square and blended towards colour `cast` by `cast_weight`."""

    polygons: tuple[np.ndarray, ...]  # each (K, 2)
    centre: tuple[float, float]
    radius: float  # largest distance of the footprint from the centre
    patch: Patch
    cast: tuple[float, float, float]  # RGB in [0, 255]
    cast_weight: float


@dataclass(frozen=True)
class _Ground:
    """Square photo tiles of side `cell` covering the plane; tile (i, j) uses entry (i, j) mod GROUND_GRID."""

    cell: float
    source: np.ndarray  # (G, G) int
    centre: np.ndarray  # (G, G, 2)
    size: np.ndarray  # (G, G)
    flip: np.ndarray  # (G, G) bool
    turns: np.ndarray  # (G, G) int
    gain: np.ndarray  # (G, G, 3), per-channel brightness of the tile

    def patch(self, i: int, j: int) -> tuple[Patch, tuple[float, float, float, float]]:
        """Tile (i, j)'s texture and its per-channel gain (as a cv2 scalar)."""
        i, j = i % GROUND_GRID, j % GROUND_GRID
        centre = (float(self.centre[j, i, 0]), float(self.centre[j, i, 1]))
        flip, turns = bool(self.flip[j, i]), int(self.turns[j, i])
        r, g, b = (float(v) for v in self.gain[j, i])
        return Patch(int(self.source[j, i]), centre, float(self.size[j, i]), flip, turns), (r, g, b, 0.0)


@dataclass(frozen=True)
class _Camera:
    """World plane -> normalised image (x in [0, 1] across the width, y in [0, aspect]) homography."""

    hom: np.ndarray  # (3, 3)
    zoom: float  # normalised image units per world unit at the target

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """Normalised image points (N, 2) -> world points (N, 2)."""
        return warp_points(self.inverse, points)

    @cached_property
    def inverse(self) -> np.ndarray:
        """Normalised image -> world homography."""
        return np.linalg.inv(self.hom)

    def to_pixels(self, width: int) -> np.ndarray:
        """World -> OpenCV pixel-centre coordinates of a frame `width` px wide."""
        return np.array([[width, 0, -0.5], [0, width, -0.5], [0, 0, 1]]) @ self.hom


@dataclass(frozen=True)
class _Scene:
    ground: _Ground
    clutter: tuple[_Item, ...]
    distractors: tuple[_Item, ...]
    target: _Item
    ego: _Camera
    exo: _Camera


def _ellipse(centre: np.ndarray, axes: tuple[float, float], angle: float, n: int = 32) -> np.ndarray:
    """(n, 2) polygon of an ellipse."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = math.cos(angle), math.sin(angle)
    x, y = axes[0] * np.cos(t), axes[1] * np.sin(t)
    return np.stack([centre[0] + c * x - s * y, centre[1] + s * x + c * y], axis=1)


def _star(rng: np.random.Generator, centre: np.ndarray, radius: float) -> np.ndarray:
    """A star-shaped (simple, possibly non-convex) polygon of 3–7 vertices."""
    n = int(rng.integers(3, 8))
    angles = 2 * np.pi * (np.arange(n) + rng.uniform(-0.3, 0.3, n)) / n + rng.uniform(0, 2 * np.pi)
    radii = radius * rng.uniform(0.5, 1.0, n)
    return centre + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _normalised(polygons: list[np.ndarray], radius: float) -> tuple[np.ndarray, ...]:
    """Scale polygons about the origin so that their farthest vertex is at `radius`."""
    reach = max(float(np.linalg.norm(p, axis=1).max()) for p in polygons)
    return tuple(p * (radius / reach) for p in polygons)


def _target_shape(rng: np.random.Generator, radius: float) -> tuple[np.ndarray, ...]:
    """The target family: a union of 1–3 ellipses / star polygons around the origin."""
    parts = []
    for k in range(int(rng.integers(1, 4))):
        offset = np.zeros(2) if k == 0 else rng.uniform(0.3, 0.7) * radius * _unit(rng.uniform(0, 2 * np.pi))
        size = radius * (1.0 if k == 0 else rng.uniform(0.4, 0.8))
        if rng.random() < 0.5:
            axes = (size * rng.uniform(0.5, 1.0), size * rng.uniform(0.25, 0.7))
            parts.append(_ellipse(offset, axes, rng.uniform(0, np.pi)))
        else:
            parts.append(_star(rng, offset, size))
    return _normalised(parts, radius)


def _look_alike(
    rng: np.random.Generator, polygons: tuple[np.ndarray, ...], radius: float
) -> tuple[np.ndarray, ...]:
    """The same shape, each part slightly squashed and turned, the whole turned to a new orientation."""
    parts = []
    for p in polygons:
        centre = p.mean(axis=0)
        a = _rotation(rng.uniform(-0.25, 0.25)) @ np.diag(rng.uniform(0.85, 1.15, 2))
        parts.append((p - centre) @ a.T + centre + rng.uniform(-0.1, 0.1, 2) * radius)
    turn = _rotation(rng.uniform(0, 2 * np.pi))
    return _normalised([p @ turn.T for p in parts], radius)


def _clutter_shape(rng: np.random.Generator, radius: float) -> tuple[np.ndarray, ...]:
    """Not the target family: one rectangle, regular polygon or near-circle."""
    kind = rng.integers(3)
    angle = rng.uniform(0, np.pi)
    if kind == 0:
        w, h = 1.0, rng.uniform(0.25, 1.0)
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) @ _rotation(angle).T
        return _normalised([corners], radius)
    if kind == 1:
        n = int(rng.integers(3, 7))
        t = angle + 2 * np.pi * np.arange(n) / n
        return _normalised([np.stack([np.cos(t), np.sin(t)], axis=1)], radius)
    return _normalised([_ellipse(np.zeros(2), (1.0, rng.uniform(0.8, 1.0)), angle)], radius)


def _unit(angle: float) -> np.ndarray:
    return np.array([math.cos(angle), math.sin(angle)])


def _rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _colour(hue: float, saturation: float, value: float) -> tuple[float, float, float]:
    """RGB in [0, 255] from hue in turns, saturation and value in [0, 1]."""
    return tuple(255.0 * c for c in colorsys.hsv_to_rgb(hue % 1.0, saturation, value))


def _corners(aspect: float) -> np.ndarray:
    return np.array([[0.0, 0.0], [1.0, 0.0], [1.0, aspect], [0.0, aspect]])


def _camera(
    position: np.ndarray, zoom: float, angle: float, tilt: float, tilt_angle: float, aspect: float
) -> _Camera:
    """The camera that shows world point 0 at `position` (normalised image), scaled by `zoom` and turned by
    `angle` there, with perspective strength `tilt` in direction `tilt_angle`. The perspective is normalised
    by the farthest frame corner, so |h31 x + h32 y| <= tilt < 1 over the frame: no horizon in view."""
    reach = float(np.linalg.norm(_corners(aspect) - position, axis=1).max())
    v = tilt * _unit(tilt_angle) / reach
    similarity = np.eye(3)
    similarity[:2, :2] = zoom * _rotation(angle)
    perspective = np.array([[1, 0, 0], [0, 1, 0], [v[0], v[1], 1]])
    place = np.array([[1, 0, position[0]], [0, 1, position[1]], [0, 0, 1]])
    return _Camera(place @ perspective @ similarity, zoom)


def _in_frame(points: np.ndarray, aspect: float, margin: float = 0.0) -> np.ndarray:
    """(N,) bool: which normalised image points (N, 2) lie in the frame, `margin` in from its edges."""
    x, y = points[:, 0], points[:, 1]
    return (x >= margin) & (x <= 1 - margin) & (y >= margin) & (y <= aspect - margin)


def _sample_camera(
    rng: np.random.Generator,
    target: _Item,
    fraction: float,
    angle: float,
    tilt: float,
    aspect: float,
    leave: bool,
) -> _Camera:
    """A camera that shows the target `fraction` of the frame width across, at a random place in the frame:
    wholly inside it, or (`leave`) cut by a frame edge, sometimes wholly outside."""
    zoom = fraction / (2 * target.radius)
    tilt_angle = rng.uniform(0, 2 * np.pi)
    reach = fraction / 2  # the target's image radius
    outline = np.concatenate(target.polygons)
    camera = None
    for _ in range(10):
        if leave:
            side, along = int(rng.integers(4)), rng.random()
            depth = rng.uniform(-0.8, 1.3) * reach  # beyond `reach`: the target is wholly outside
            position = np.array([along, along * aspect])
            position[side // 2] = -depth if side % 2 == 0 else (1.0, aspect)[side // 2] + depth
        else:
            margin = reach + 0.02
            x = rng.uniform(margin, 1 - margin) if margin < 0.5 else 0.5
            y = rng.uniform(margin, aspect - margin) if margin < aspect / 2 else aspect / 2
            position = np.array([x, y])
        camera = _camera(position, zoom, angle, tilt, tilt_angle, aspect)
        if leave or _in_frame(warp_points(camera.hom, outline), aspect).all():
            break
    return camera


def _sample_scene(
    rng: np.random.Generator, tier: Tier, ego_aspect: float, exo_aspect: float, wide: bool = False
) -> _Scene:
    """The scene of one pair; `wide` draws object sizes and camera distances beyond the training ranges
    (synth/wide.py)."""
    radius = rng.uniform(*TARGET_RADIUS)
    hue = rng.random()
    target = _Item(
        _target_shape(rng, radius),
        (0.0, 0.0),
        radius,
        random_patch(rng, (0.2, 0.6)),
        _colour(hue, rng.uniform(0.65, 1.0), rng.uniform(0.7, 1.0)),
        rng.uniform(0.35, 0.6),
    )

    ratio = rng.uniform(*tier.scale_ratio)
    fraction = EGO_FRACTION
    if wide:
        ratio *= rng.uniform(*wide_look.RATIO_STRETCH)
        fraction = wide_look.EGO_FRACTION
    ego_fraction = rng.uniform(max(fraction[0], MIN_EXO_FRACTION * ratio), max(fraction))
    leave = rng.random() < tier.leave_prob
    leave_exo = rng.random() < 0.5
    ego_angle = rng.uniform(0, 2 * np.pi)
    exo_angle = ego_angle + math.radians(tier.rotation_deg) * rng.uniform(-1, 1)
    ego_tilt, exo_tilt = rng.uniform(0, tier.tilt, 2)
    ego = _sample_camera(rng, target, ego_fraction, ego_angle, ego_tilt, ego_aspect, leave and not leave_exo)
    exo = _sample_camera(
        rng, target, ego_fraction / ratio, exo_angle, exo_tilt, exo_aspect, leave and leave_exo
    )

    distractors = _sample_distractors(rng, tier, target, hue, (ego, ego_aspect), (exo, exo_aspect))
    clutter = _sample_clutter(
        rng, (target, *distractors), hue, ((ego, ego_aspect, 2, 6), (exo, exo_aspect, 3, 9))
    )

    g = GROUND_GRID
    ground = _Ground(
        rng.uniform(*GROUND_CELL),
        rng.integers(len(sources()), size=(g, g)),
        rng.random((g, g, 2)),
        rng.uniform(0.25, 1.0, (g, g)),
        rng.random((g, g)) < 0.5,
        rng.integers(4, size=(g, g)),
        rng.uniform(0.6, 1.0, (g, g, 1)) * rng.uniform(0.9, 1.1, (g, g, 3)),
    )
    return _Scene(ground, clutter, distractors, target, ego, exo)


def _free(
    centres: np.ndarray, radius: float, items: tuple[_Item, ...] | list[_Item], gap: float
) -> np.ndarray:
    """(N,) bool: whether a footprint of `radius` at each of `centres` (N, 2) keeps `gap` × the sum of radii
    away from every item."""
    others = np.array([it.centre for it in items])
    reach = gap * (radius + np.array([it.radius for it in items]))
    return (np.linalg.norm(centres[:, None] - others, axis=2) >= reach).all(axis=1)


def _sample_distractors(
    rng: np.random.Generator,
    tier: Tier,
    target: _Item,
    hue: float,
    ego: tuple[_Camera, float],
    exo: tuple[_Camera, float],
) -> tuple[_Item, ...]:
    """Look-alikes of the target (similar shape, same texture flipped or turned, slightly shifted colour
    cast), placed in view of both cameras where possible, else of the exo camera."""
    placed: list[_Item] = []
    for _ in range(int(rng.integers(tier.distractors[0], tier.distractors[1] + 1))):
        radius = target.radius * rng.uniform(0.85, 1.15)
        polygons = _look_alike(rng, target.polygons, radius)
        p = target.patch
        patch = (
            Patch(p.source, p.centre, p.size, not p.flip, p.turns)
            if rng.random() < 0.5
            else Patch(p.source, p.centre, p.size, p.flip, p.turns + 2)
        )
        r, g, b = (c / 255 for c in target.cast)
        _, saturation, value = colorsys.rgb_to_hsv(r, g, b)
        cast = _colour(
            hue + rng.choice([-1, 1]) * rng.uniform(0.015, 0.05),
            np.clip(saturation + rng.uniform(-0.1, 0.1), 0, 1),
            np.clip(value + rng.uniform(-0.1, 0.1), 0, 1),
        )
        weight = target.cast_weight + rng.uniform(-0.05, 0.05)
        # Candidates in the ego frame that the exo camera sees too, else anywhere in the exo frame.
        (ego_camera, ego_aspect), (exo_camera, exo_aspect) = ego, exo
        both = ego_camera.to_world(rng.uniform([0.05, 0.05], [0.95, ego_aspect - 0.05], (40, 2)))
        both = both[_in_frame(warp_points(exo_camera.hom, both), exo_aspect, 0.03)]
        exo_only = exo_camera.to_world(rng.uniform([0.05, 0.05], [0.95, exo_aspect - 0.05], (20, 2)))
        candidates = np.concatenate([both, exo_only])
        fits = np.flatnonzero(_free(candidates, radius, [target, *placed], 1.15))
        if len(fits):
            placed.append(_Item(polygons, tuple(candidates[fits[0]]), radius, patch, cast, weight))
    return tuple(placed)


def _sample_clutter(
    rng: np.random.Generator,
    avoid: tuple[_Item, ...],
    hue: float,
    views: tuple[tuple[_Camera, float, int, int], ...],
) -> tuple[_Item, ...]:
    """Other objects, of another shape family and far-off colour casts, scattered over each camera's view
    (count drawn from [lo, hi) per view) without overlapping the target or the distractors."""
    size = avoid[0].radius
    clutter: list[_Item] = []
    for camera, aspect, lo, hi in views:
        count = int(rng.integers(lo, hi))
        radii = size * rng.uniform(0.4, 1.4, count)
        centres = camera.to_world(rng.uniform([-0.1, -0.1], [1.1, aspect + 0.1], (count, 2)))
        for centre, radius in zip(centres, radii, strict=True):
            if not _free(centre[None], radius, avoid, 1.05)[0]:
                continue
            cast = _colour(hue + rng.uniform(1 / 6, 5 / 6), rng.uniform(0.3, 0.9), rng.uniform(0.4, 1.0))
            shape = _clutter_shape(rng, radius)
            clutter.append(
                _Item(shape, tuple(centre), radius, random_patch(rng), cast, rng.uniform(0.15, 0.5))
            )
    return tuple(clutter)


# ---------------------------------------------------------------------------------------------------------
# Rendering a camera's view.


@dataclass(frozen=True)
class _Raster:
    """An axis-aligned window of the plane sampled at `density` px per world unit from `origin`, holding the
    convex `quad` (4, 2) of the plane that the camera sees."""

    origin: tuple[float, float]
    density: float
    height: int
    width: int
    quad: np.ndarray

    def to_raster(self) -> np.ndarray:
        """World -> raster pixel-centre coordinates."""
        d, (x0, y0) = self.density, self.origin
        return np.array([[d, 0, -d * x0 - 0.5], [0, d, -d * y0 - 0.5], [0, 0, 1]])

    def span(self, lo: float, hi: float, axis: int) -> tuple[int, int]:
        """Raster px [a, b) covering world [lo, hi) on `axis`, unclipped."""
        o = self.origin[axis]
        return round(self.density * (lo - o)), round(self.density * (hi - o))


def _raster_for(camera: _Camera, hw: tuple[int, int]) -> _Raster:
    """The plane window a camera sees, at RASTER_DENSITY px per output px at the target (capped)."""
    h, w = hw
    quad = camera.to_world(_corners(h / w))
    (x0, y0), (x1, y1) = quad.min(axis=0), quad.max(axis=0)
    density = camera.zoom * w * RASTER_DENSITY
    density = min(density, math.sqrt(MAX_RASTER * h * w / ((x1 - x0) * (y1 - y0))))
    size = (math.ceil((y1 - y0) * density) + 1, math.ceil((x1 - x0) * density) + 1)
    return _Raster((x0, y0), density, *size, quad)


def _cells_in_view(raster: _Raster, cell: float) -> list[tuple[int, int]]:
    """Ground tiles (i, j) that may meet the raster's view quad: tile centres within half a tile diagonal
    of every edge's inner side (a convex quad, either orientation)."""
    x0, y0 = raster.origin
    i = np.arange(math.floor(x0 / cell), math.floor((x0 + raster.width / raster.density) / cell) + 1)
    j = np.arange(math.floor(y0 / cell), math.floor((y0 + raster.height / raster.density) / cell) + 1)
    centres = np.stack(np.meshgrid((i + 0.5) * cell, (j + 0.5) * cell), axis=-1).reshape(-1, 2)
    edges = np.roll(raster.quad, -1, axis=0) - raster.quad
    normals = np.stack([-edges[:, 1], edges[:, 0]], axis=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    side = np.einsum("ek,cek->ce", normals, centres[:, None] - raster.quad)  # (cells, edges)
    side *= np.sign(np.einsum("ek,ek->", normals, raster.quad.mean(axis=0) - raster.quad))
    keep = (side >= -cell / math.sqrt(2)).all(axis=1)
    jj, ii = np.meshgrid(j, i, indexing="ij")
    return list(zip(ii.ravel()[keep].tolist(), jj.ravel()[keep].tolist(), strict=True))


def _paint_ground(image: np.ndarray, ground: _Ground, raster: _Raster) -> None:
    g = ground.cell
    for i, j in _cells_in_view(raster, g):
        top, bottom = raster.span(j * g, (j + 1) * g, 1)
        left, right = raster.span(i * g, (i + 1) * g, 0)
        window = (max(top, 0), max(left, 0), min(bottom, raster.height), min(right, raster.width))
        if window[0] >= window[2] or window[1] >= window[3]:
            continue
        patch, gain = ground.patch(i, j)
        local = (window[0] - top, window[1] - left, window[2] - top, window[3] - left)
        tile = render_patch(patch, bottom - top, right - left, local)
        image[window[0] : window[2], window[1] : window[3]] = cv2.multiply(tile, gain)


def _paint_item(image: np.ndarray, item: _Item, raster: _Raster) -> None:
    """Draw `item` (texture blended towards its cast, inside its footprint) into the RGBA raster image."""
    cx, cy = item.centre
    top, bottom = raster.span(cy - item.radius, cy + item.radius, 1)
    left, right = raster.span(cx - item.radius, cx + item.radius, 0)
    window = (max(top, 0), max(left, 0), min(bottom, raster.height), min(right, raster.width))
    if window[0] >= window[2] or window[1] >= window[3]:
        return
    to_window = raster.to_raster()
    to_window[:2, 2] -= (window[1], window[0])
    shape = (window[2] - window[0], window[3] - window[1])
    inside = _fill(shape, [warp_points(to_window, p + item.centre) for p in item.polygons])
    local = (window[0] - top, window[1] - left, window[2] - top, window[3] - left)
    texture = _tint(render_patch(item.patch, bottom - top, right - left, local), item.cast, item.cast_weight)
    cv2.copyTo(texture, inside.view(np.uint8), image[window[0] : window[2], window[1] : window[3]])


def _tint(texture: np.ndarray, cast: tuple[float, float, float], weight: float) -> np.ndarray:
    """RGBA `texture` blended towards colour `cast`: (1 - weight) · texture + weight · cast."""
    blend = np.zeros((4, 5), np.float32)
    blend[:3, :3] = np.eye(3) * (1 - weight)
    blend[:3, 4] = np.array(cast) * weight
    blend[3, 3] = 1
    return cv2.transform(texture, blend)


def _fill(shape: tuple[int, int], polygons: list[np.ndarray]) -> np.ndarray:
    """(H, W) bool: the union of polygons given in pixel-centre coordinates (1/16 px precision)."""
    out = np.zeros(shape, np.uint8)
    for p in polygons:  # one call each: a single call would fill their overlaps even-odd, leaving holes
        cv2.fillPoly(out, [np.round(p * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return out.view(bool)


def _footprint(items: tuple[_Item, ...], hom: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8, 255 on the image of the items under world -> pixel homography `hom`. An item with a
    vertex behind the camera is skipped: it is far outside the frame (the horizon never enters the view)."""
    polygons = []
    for item in items:
        mapped = [(p + item.centre) @ hom[:, :2].T + hom[:, 2] for p in item.polygons]
        if all((m[:, 2] > 0).all() for m in mapped):
            polygons += [m[:, :2] / m[:, 2:] for m in mapped]
    return _fill(shape, polygons).astype(np.uint8) * 255


def _render_view(
    scene: _Scene, camera: _Camera, hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The camera's view at SUPERSAMPLE × `hw`: image (sH, sW, 4) uint8 RGBA and (sH, sW) uint8 masks of the
    target and of the distractors (255 inside; exact, drawn from the polygons)."""
    raster = _raster_for(camera, hw)
    image = np.zeros((raster.height, raster.width, 4), np.uint8)
    _paint_ground(image, scene.ground, raster)
    for item in (*scene.clutter, *scene.distractors, scene.target):
        _paint_item(image, item, raster)
    size = (hw[1] * SUPERSAMPLE, hw[0] * SUPERSAMPLE)
    hom = camera.to_pixels(size[0])
    image = cv2.warpPerspective(
        image,
        hom @ np.linalg.inv(raster.to_raster()),
        size,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return image, _footprint((scene.target,), hom, size[::-1]), _footprint(scene.distractors, hom, size[::-1])


# ---------------------------------------------------------------------------------------------------------
# Per-view effects: occluders and photometry.


def _occluder_polygons(
    centre: np.ndarray,
    direction: np.ndarray,
    distance: float,
    hand: tuple[float, float],
    arm: float,
    far: float,
) -> list[np.ndarray]:
    """A hand (ellipse) at `centre + distance · direction`, its arm a band of width `arm` running `far` on."""
    palm = centre + distance * direction
    normal = np.array([-direction[1], direction[0]]) * arm / 2
    band = np.array(
        [palm + normal, palm - normal, palm - normal + far * direction, palm + normal + far * direction]
    )
    return [_ellipse(palm, hand, math.atan2(direction[1], direction[0])), band]


def _occlude(
    rng: np.random.Generator, image: np.ndarray, masks: tuple[np.ndarray, ...], max_occlusion: float
) -> bool:
    """Draw a textured hand-and-arm from a frame edge over part of the target (supersampled RGBA view, in
    place), hiding at most `max_occlusion` of it, and clear `masks` (target first) under it. False if the
    target is not in view."""
    target = masks[0] >= 128
    ys, xs = np.nonzero(target)
    if len(xs) < 64:
        return False
    h, w = target.shape
    centre = np.array([xs.mean(), ys.mean()])
    size = math.sqrt(len(xs) / math.pi)
    hand = (size * rng.uniform(0.6, 1.2), size * rng.uniform(0.4, 0.8))
    arm = 2 * hand[1] * rng.uniform(0.6, 1.0)
    side = int(rng.integers(4))
    edge = centre.copy()
    edge[side // 2] = (0.0, (w, h)[side // 2])[side % 2]
    edge[1 - side // 2] += rng.uniform(-0.3, 0.3) * (w, h)[1 - side // 2]
    direction = (edge - centre) / max(float(np.hypot(*(edge - centre))), 1e-6)
    far = float(np.hypot(w, h)) * 2
    goal = max_occlusion * rng.uniform(0.3, 0.9)  # below the cap: coverage is estimated on a coarse grid

    # Coverage falls as the hand retreats towards the edge; search the distance that hides `goal` of it.
    top, left = ys.min(), xs.min()
    step = max(1, math.ceil(max(ys.max() - top, xs.max() - left) / 64))
    coarse = target[top::step, left::step]
    total = coarse.sum()

    def coverage(distance: float) -> float:
        polygons = _occluder_polygons(centre, direction, distance, hand, arm, far)
        return (_fill(coarse.shape, [(p - (left, top)) / step for p in polygons]) & coarse).sum() / total

    lo, hi = 0.0, float(np.hypot(*(edge - centre))) + hand[0] + size
    if coverage(lo) > goal:
        for _ in range(8):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if coverage(mid) > goal else (lo, mid)
        lo = hi
    cover = _fill((h, w), _occluder_polygons(centre, direction, lo, hand, arm, far))
    ys, xs = np.nonzero(cover)
    if len(xs) == 0:
        return True
    box = (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
    skin = rng.random() < 0.6
    hue, saturation = (
        (rng.uniform(0.03, 0.1), rng.uniform(0.25, 0.6)) if skin else (rng.random(), rng.random())
    )
    cast = _colour(hue, saturation, rng.uniform(0.45, 0.95))
    texture = render_patch(random_patch(rng), box[2] - box[0], box[3] - box[1])
    region = cover[box[0] : box[2], box[1] : box[3]].view(np.uint8)
    cv2.copyTo(_tint(texture, cast, rng.uniform(0.5, 0.85)), region, image[box[0] : box[2], box[1] : box[3]])
    for mask in masks:
        mask[cover] = 0
    return True


def _photometry(rng: np.random.Generator, image: np.ndarray, strength: float) -> np.ndarray:
    """This camera's gain, white balance, blur (scaled to the frame width) and noise."""
    gain = math.exp(rng.uniform(-0.3, 0.3) * strength) * np.exp(rng.uniform(-0.12, 0.12, 3) * strength)
    blur = rng.uniform(0, 1.5 * strength) * image.shape[1] / 640
    noise = rng.uniform(0, 6 * strength)
    lut = np.clip(np.arange(256)[:, None] * gain, 0, 255).astype(np.uint8)[:, None, :]
    image = cv2.LUT(image, lut)
    if blur > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    if noise > 0.5:
        h, w = image.shape[:2]
        y, x = rng.integers(0, _GRAIN_SHIFT + 1, 2)
        grain = _grain(h, w)[y : y + h, x : x + w]
        image = cv2.addWeighted(image, 1.0, grain, noise / _GRAIN_SCALE, 0.0, dtype=cv2.CV_8U)
    return image


_GRAIN_SHIFT = 64  # noise is a cached field per frame size, shifted by up to this many px per image
_GRAIN_SCALE = 32  # the field holds N(0, 1) noise × this, as int16


@lru_cache(maxsize=8)
def _grain(height: int, width: int) -> np.ndarray:
    """(height + shift, width + shift, 3) int16 Gaussian sensor noise (fixed; generating it per image would
    cost more than the rest of the photometry)."""
    shape = (height + _GRAIN_SHIFT, width + _GRAIN_SHIFT, 3)
    noise = np.random.default_rng(0).standard_normal(shape, dtype=np.float32) * _GRAIN_SCALE
    return noise.astype(np.int16)


def render_rig_pair(
    seed: int,
    tier: Tier | str,
    ego_hw: tuple[int, int] = (480, 640),
    exo_hw: tuple[int, int] = (540, 960),
    wide: bool = False,
) -> RigPair:
    """Render pair `seed` of `tier` at the requested (height, width) sizes; deterministic in all five.

    The scene is drawn from (seed, 0), the occluder from (seed, 1) and the photometry from (seed, 2), so a
    tier that only differs in `occluder_prob` renders the same pair with or without the occluder. `wide`
    draws sizes and distances beyond the training ranges and sees each view through a camera look of
    synth/wide.py, drawn from (seed, 3); `ego_to_exo` then holds for the views before lens distortion.
    """
    tier = _tier(tier)
    scene = _sample_scene(
        np.random.default_rng((seed, 0)), tier, ego_hw[0] / ego_hw[1], exo_hw[0] / exo_hw[1], wide
    )
    views = [_render_view(scene, scene.ego, ego_hw), _render_view(scene, scene.exo, exo_hw)]

    occluder = np.random.default_rng((seed, 1))
    if occluder.random() < tier.occluder_prob:
        first = int(occluder.random() < 0.5)
        for image, *masks in (views[first], views[1 - first]):
            if _occlude(occluder, image, masks, tier.max_occlusion):
                break

    photometry = np.random.default_rng((seed, 2))
    looks = np.random.default_rng((seed, 3))
    out = []
    for (image, *masks), (h, w) in zip(views, (ego_hw, exo_hw), strict=True):
        image = cv2.cvtColor(cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_RGBA2RGB)
        masks = [cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA) >= 128 for m in masks]
        image = _photometry(photometry, image, tier.photometric)
        if wide:
            image, masks = wide_look.apply_look(looks, wide_look.sample_look(looks), image, masks)
        out.append((image, *masks))
    (ego, ego_mask, ego_distractors), (exo, exo_mask, exo_distractors) = out
    to_exo = scene.exo.to_pixels(exo_hw[1]) @ np.linalg.inv(scene.ego.to_pixels(ego_hw[1]))
    return RigPair(
        ego, ego_mask, exo, exo_mask, to_exo / to_exo[2, 2], tier.name, seed, ego_distractors, exo_distractors
    )
