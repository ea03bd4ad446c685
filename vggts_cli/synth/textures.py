"""Texture sources for rendered scenes: real photographs that ship with scikit-image, plus procedural ones.

A `Patch` names a crop of one source (which source, where, how large, flipped / turned) without fixing its
output size, so the same piece of texture can be rendered at whatever resolution a camera needs. Sources are
loaded once and kept as RGBA image pyramids: a tiny render of a large crop costs as little as a tiny render
of a small one, and OpenCV resamples 4-channel images on a vectorised path, well over twice as fast as
3-channel ones. Without scikit-image (the optional `train` extra) the pool holds only the procedural
textures; everything else is the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from vggts_cli.synth.scene import texture

# skimage.data images that are inside the wheel (no download); greyscale ones become grey RGB.
PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "cat",
    "rocket",
    "camera",
    "brick",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "colorwheel",
    "retina",
    "coins",
    "moon",
    "text",
    "clock",
    "page",
)
PROCEDURAL = 4  # procedural textures (scene.texture) added to the pool, 256×256 each
_SMALLEST_LEVEL = 16  # pyramid levels stop once the shorter side would drop below this


def _load_photos() -> list[np.ndarray]:
    """The PHOTOS that load offline, as (H, W, 3) uint8 RGB; empty without scikit-image."""
    try:
        from skimage import data
    except ImportError:
        return []
    photos = []
    for name in PHOTOS:
        try:
            image = np.asarray(getattr(data, name)())
        except (ImportError, OSError, ValueError, AttributeError):  # a data file missing from this install
            continue
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        photos.append(np.ascontiguousarray(image[..., :3], dtype=np.uint8))
    return photos


def _pyramid(image: np.ndarray) -> tuple[np.ndarray, ...]:
    """Level k is the RGB `image` as RGBA (opaque) downscaled by 2**k (area averaging)."""
    levels = [cv2.cvtColor(image, cv2.COLOR_RGB2RGBA)]
    while min(levels[-1].shape[:2]) // 2 >= _SMALLEST_LEVEL:
        h, w = levels[-1].shape[:2]
        levels.append(cv2.resize(levels[-1], (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    return tuple(levels)


@lru_cache(maxsize=1)
def sources() -> tuple[tuple[np.ndarray, ...], ...]:
    """Every texture source as a pyramid of (H, W, 4) uint8 RGBA levels: photographs, then procedural."""
    images = _load_photos()
    images += [texture(np.random.default_rng(1000 + i), 256, 256) for i in range(PROCEDURAL)]
    return tuple(_pyramid(image) for image in images)


@dataclass(frozen=True)
class Patch:
    """A crop of texture source `source`, independent of the size it is rendered at.

    The crop is centred at `centre` (fractions of the source width, height); its area is `size`² times the
    square of the source's shorter side, shrunk if needed to fit. `turns` quarter turns (counter-clockwise)
    and a horizontal `flip` are applied after cropping.
    """

    source: int
    centre: tuple[float, float]
    size: float
    flip: bool = False
    turns: int = 0


def random_patch(rng: np.random.Generator, scale: tuple[float, float] = (0.15, 1.0)) -> Patch:
    """A crop of a random source, its size log-uniform in `scale` (fractions of the source's shorter side)."""
    source = int(rng.integers(len(sources())))
    cx, cy = rng.random(2)
    size = float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]))))
    return Patch(source, (float(cx), float(cy)), size, bool(rng.random() < 0.5), int(rng.integers(4)))


def _output_to_source(patch: Patch, height: int, width: int) -> tuple[int, np.ndarray]:
    """(pyramid level, 3×3 map from output pixel centres to that level's pixel centres) of a render."""
    levels = sources()[patch.source]
    turns = patch.turns % 4
    out_h, out_w = (width, height) if turns % 2 else (height, width)  # the crop's shape before turning
    src_h, src_w = levels[0].shape[:2]
    side = patch.size * min(src_h, src_w)
    aspect = out_w / out_h
    crop_h, crop_w = side / math.sqrt(aspect), side * math.sqrt(aspect)
    fit = min(1.0, src_h / crop_h, src_w / crop_w)
    crop_h, crop_w = crop_h * fit, crop_w * fit
    # The finest level at which the crop is still as large as the output, so resampling shrinks by < 2.
    level = min(math.floor(math.log2(max(crop_h / out_h, 1.0))), len(levels) - 1)
    k = 2.0**level
    x0, y0 = (src_w - crop_w) * patch.centre[0] / k, (src_h - crop_h) * patch.centre[1] / k
    sx, sy = crop_w / k / out_w, crop_h / k / out_h
    crop = np.array([[sx, 0, x0 + 0.5 * sx - 0.5], [0, sy, y0 + 0.5 * sy - 0.5], [0, 0, 1]])
    flip = np.array([[-1, 0, out_w - 1], [0, 1, 0], [0, 0, 1]]) if patch.flip else np.eye(3)
    # np.rot90 by `turns`: the turned pixel (x, y) comes from this pixel of the unturned image.
    unturn = (
        ((1, 0, 0), (0, 1, 0)),
        ((0, -1, out_w - 1), (1, 0, 0)),
        ((-1, 0, out_w - 1), (0, -1, out_h - 1)),
        ((0, 1, 0), (-1, 0, out_h - 1)),
    )[turns]
    return level, crop @ flip @ np.array((*unturn, (0, 0, 1)))


def render_patch(
    patch: Patch, height: int, width: int, window: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """The patch resampled to (height, width, 4) uint8 RGBA (opaque; the crop's aspect follows the output's),
    turned and flipped; `window` (y0, x0, y1, x1) renders only that part of it."""
    level, to_source = _output_to_source(patch, height, width)
    y0, x0, y1, x1 = window if window is not None else (0, 0, height, width)
    to_source = to_source @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]])
    return cv2.warpAffine(
        sources()[patch.source][level],
        to_source[:2],
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT_101,
    )


def random_crop(
    rng: np.random.Generator, height: int, width: int, scale: tuple[float, float] = (0.15, 1.0)
) -> np.ndarray:
    """A (height, width, 3) uint8 crop of a random source at a random scale (see `random_patch`)."""
    return cv2.cvtColor(render_patch(random_patch(rng, scale), height, width), cv2.COLOR_RGBA2RGB)
