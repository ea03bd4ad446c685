"""Two views of one image: where each looks in it, rendering, colour jitter — the single-image pairs the
model is trained on (train/samples.py) and tuned on at test time (engines/learned/adapt.py).

A view is a quadrilateral of the photo mapped onto a frame by a homography; the frame then becomes a
model input exactly as a camera frame does at inference (`Letterbox`: aspect kept, top-left, grey pad).
The source view is an axis-aligned window. Its partner is one of two kinds (the paper's strategy):

- adaptive: what VGGT's tracker is trained for — a mild crop (≥ 70 % of each side), a scale change of
  0.8–1.25×, a horizontal flip;
- non-adaptive: what it is not — strong perspective (corners jittered by up to 30 % of a side), any
  rotation, a scale change of 0.35–3×.

Coordinates are pixel-edge coordinates (pixel i spans [i, i + 1)) unless a name says otherwise, so that
scaling by the supersampling factor is exact; OpenCV's warps use pixel centres and get converted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vggts_cli.geometry import Box, Letterbox
from vggts_cli.model.points import kmeans_points

ASPECTS = (1.0, 4 / 3, 16 / 9, 3 / 4)  # frame width / height: square, the ego and exo cameras, portrait
SUPERSAMPLE = 2  # views are warped at this multiple of the model size, then area-averaged down
SOURCE_FRACTION = (0.45, 0.9)  # source window side, fraction of the largest window of its aspect
ADAPTIVE_CROP = (0.7, 1.0)
ADAPTIVE_SCALE = (0.8, 1.25)
STRONG_SCALE = (0.35, 3.0)
STRONG_JITTER = 0.3  # corner jitter, fraction of the frame side
STRONG_SHIFT = 0.15  # view centre shift, fraction of the frame side
TRIES = 20
PROMPT_NOISE = 0.02  # std of a synthesised prompt's noise, fraction of the model input side
PYRAMID_LEVELS = 3  # full, 1/2, 1/4


@dataclass(frozen=True)
class Viewport:
    """The photo quadrilateral `quad` (4, 2) float64 (corners of the frame's top-left, top-right,
    bottom-right, bottom-left, photo px) seen by a frame whose letterboxed model input (size×size) holds
    it in the top-left `content_hw` = (h, w)."""

    quad: np.ndarray
    content_hw: tuple[int, int]
    size: int

    def to_input(self) -> np.ndarray:
        """(3, 3) homography photo px -> model-input px, normalised so points in front map with w > 0."""
        h, w = self.content_hw
        rect = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
        hom = cv2.getPerspectiveTransform(self.quad.astype(np.float32), rect).astype(np.float64)
        return hom if (hom[2] @ [*self.quad[0], 1.0]) > 0 else -hom


def fit_content(height: float, width: float, size: int) -> tuple[int, int]:
    """Letterbox content (h, w) of a frame (height, width)."""
    return Letterbox.fit((max(1, round(height)), max(1, round(width))), size).content_hw


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def source_window(
    photo_hw: tuple[int, int], size: int, rng: np.random.Generator
) -> tuple[Viewport, tuple[int, int, int, int]]:
    """A random axis-aligned window of a random aspect inside the photo: (viewport, (x0, y0, x1, y1))."""
    height, width = photo_hw
    aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]
    largest = min(width / np.sqrt(aspect), height * np.sqrt(aspect))  # geometric-mean side that fits
    side = largest * rng.uniform(*SOURCE_FRACTION)
    win_w, win_h = min(width, round(side * np.sqrt(aspect))), min(height, round(side / np.sqrt(aspect)))
    x0, y0 = int(rng.integers(0, width - win_w + 1)), int(rng.integers(0, height - win_h + 1))
    window = (x0, y0, x0 + win_w, y0 + win_h)
    return Viewport(rect(*window), fit_content(win_h, win_w, size), size), window


def adaptive_view(window: tuple[int, int, int, int], size: int, rng: np.random.Generator) -> Viewport:
    """A mild crop of the source window per axis, zoomed by a mild scale, shifted, maybe mirrored."""
    x0, y0, x1, y1 = window
    src_w, src_h = x1 - x0, y1 - y0
    zoom = np.exp(rng.uniform(*np.log(ADAPTIVE_SCALE)))
    win_w, win_h = src_w * rng.uniform(*ADAPTIVE_CROP) / zoom, src_h * rng.uniform(*ADAPTIVE_CROP) / zoom
    cx = (x0 + x1) / 2 + rng.uniform(-1, 1) * max(0.0, src_w - win_w) / 2
    cy = (y0 + y1) / 2 + rng.uniform(-1, 1) * max(0.0, src_h - win_h) / 2
    quad = rect(cx - win_w / 2, cy - win_h / 2, cx + win_w / 2, cy + win_h / 2)
    if rng.random() < 0.5:
        quad = quad[[1, 0, 3, 2]]  # the frame's left edge sees the window's right edge: a mirror image
    return Viewport(quad, fit_content(win_h, win_w, size), size)


def non_adaptive_view(
    window: tuple[int, int, int, int],
    object_box: Box,
    size: int,
    rng: np.random.Generator,
) -> Viewport:
    """A strongly transformed view: scale change, rotation, perspective, of a random aspect, centred
    between the source window's centre and the object's. The whole object box stays in front of it
    (a homography can put points behind the camera; those would have no position in the target)."""
    x0, y0, x1, y1 = window
    src_side = np.sqrt((x1 - x0) * (y1 - y0))
    win_centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    bx0, by0, bx1, by1 = object_box
    obj_centre = np.array([(bx0 + bx1) / 2, (by0 + by1) / 2])
    box_corners = rect(*object_box)
    for _ in range(TRIES):
        aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]
        side = src_side / np.exp(rng.uniform(*np.log(STRONG_SCALE)))
        half = np.array([side * np.sqrt(aspect), side / np.sqrt(aspect)]) / 2
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
        corners = corners + rng.uniform(-1, 1, (4, 2)) * STRONG_JITTER * 2 * half
        angle = rng.uniform(-np.pi, np.pi)
        rotate = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        centre = (
            win_centre
            + rng.uniform() * (obj_centre - win_centre)
            + rng.uniform(-1, 1, 2) * STRONG_SHIFT * side
        )
        quad = corners @ rotate.T + centre
        if not _convex(quad):
            continue
        view = Viewport(quad, fit_content(2 * half[1], 2 * half[0], size), size)
        depth = np.c_[box_corners, np.ones(4)] @ view.to_input()[2]
        if (depth > 0).all():
            return view
    # Unreachable in practice (a convex quad with the object in front is the common case); the plain
    # source window is a valid, if easy, partner.
    return Viewport(rect(*window), fit_content(y1 - y0, x1 - x0, size), size)


def _convex(quad: np.ndarray) -> bool:
    """Whether the polygon (4, 2) is convex and not self-intersecting (all turns the same way)."""
    edges = np.roll(quad, -1, axis=0) - quad
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    return bool((turns > 0).all() or (turns < 0).all())


def pyramid(image: np.ndarray) -> tuple[np.ndarray, ...]:
    """An (H, W, 3) uint8 image's anti-aliasing pyramid for `render`: PYRAMID_LEVELS levels, level k at
    2^-k the size."""
    levels = [np.ascontiguousarray(image)]
    for _ in range(PYRAMID_LEVELS - 1):
        levels.append(cv2.pyrDown(levels[-1]))
    return tuple(levels)


def render(
    levels: Sequence[np.ndarray], object_mask: np.ndarray, view: Viewport, fill: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The model input of a view of an image given as its `pyramid`: (size, size, 3) uint8 image and
    (size, size) bool mask of the object (`object_mask` (H, W) bool in image px). Warped at SUPERSAMPLE×
    from the pyramid level that matches the zoom (so strong zoom-outs do not alias), area-averaged down
    by `Letterbox`; outside the image is `fill`."""
    h, w = view.content_hw
    frame_hw = (SUPERSAMPLE * h, SUPERSAMPLE * w)
    to_frame = np.diag([SUPERSAMPLE, SUPERSAMPLE, 1.0]) @ view.to_input()
    (ax, ay), (bx, by) = view.quad[2] - view.quad[0], view.quad[3] - view.quad[1]
    quad_area = 0.5 * abs(ax * by - ay * bx)  # half the cross product of the diagonals
    zoom = np.sqrt(frame_hw[0] * frame_hw[1] / quad_area)  # frame px per photo px
    level = int(np.clip(np.floor(-np.log2(zoom)), 0, len(levels) - 1))
    from_level = to_frame @ np.diag([2.0**level, 2.0**level, 1.0])
    size_wh = (frame_hw[1], frame_hw[0])
    image = cv2.warpPerspective(
        levels[level], centred(from_level), size_wh, flags=cv2.INTER_LINEAR, borderValue=fill
    )
    mask = cv2.warpPerspective(
        object_mask.astype(np.uint8) * 255, centred(to_frame), size_wh, flags=cv2.INTER_LINEAR
    )
    box = Letterbox.fit(frame_hw, view.size)
    return box.image(image), box.mask(mask >= 128)


def centred(hom: np.ndarray) -> np.ndarray:
    """A homography between pixel-edge coordinates -> the same map between pixel-centre coordinates."""
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    return np.linalg.inv(shift) @ hom @ shift


def map_points(hom: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 2) (x, y) through a homography (3, 3) -> (N, 2) float32."""
    mapped = np.c_[points, np.ones(len(points))] @ hom.T
    return (mapped[:, :2] / mapped[:, 2:]).astype(np.float32)


def colour_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random saturation, contrast, brightness and white balance of an (h, w, 3) uint8 image."""
    x = image.astype(np.float32)
    grey = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    x = grey + rng.uniform(0.6, 1.4) * (x - grey)
    mean = x.mean()
    x = mean + rng.uniform(0.7, 1.3) * (x - mean)
    x = x * rng.uniform(0.7, 1.3) * rng.uniform(0.92, 1.08, 3).astype(np.float32)
    return np.clip(x, 0, 255).astype(np.uint8)


def target_points(
    src_mask: np.ndarray,
    to_target: np.ndarray,
    content_hw: tuple[int, int],
    n_points: int,
    noise: tuple[np.random.Generator, float] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source points, their true target positions through `to_target` (pixel-centre homography), which of
    those lie in the target's content (h, w), and the prompt: the positions plus Gaussian `noise`
    (rng, std px) if given, clipped to the content."""
    src = kmeans_points(src_mask, n_points)
    tgt = map_points(to_target, src)
    h, w = content_hw
    valid = (tgt[:, 0] >= -0.5) & (tgt[:, 0] < w - 0.5) & (tgt[:, 1] >= -0.5) & (tgt[:, 1] < h - 0.5)
    prompt = tgt if noise is None else tgt + noise[0].normal(0, noise[1], tgt.shape)
    prompt = np.stack([np.clip(prompt[:, 0], 0, w - 1), np.clip(prompt[:, 1], 0, h - 1)], axis=1)
    return src, tgt, valid, prompt.astype(np.float32)


def jitter_content(image: np.ndarray, view: Viewport, rng: np.random.Generator) -> np.ndarray:
    """Colour jitter on the image part of a letterboxed input; the padding keeps its inference value."""
    h, w = view.content_hw
    out = image.copy()
    out[:h, :w] = colour_jitter(image[:h, :w], rng)
    return out
