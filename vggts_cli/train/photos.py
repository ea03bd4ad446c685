"""Real photographs for single-image training pairs: scikit-image's bundled sample images (they load
offline; the optional `train` extra). Two sets of images are evaluation data and never drawn: OpenCV's
sample images (reserved for evaluation elsewhere) and scikit-image's Middlebury stereo pair (the real
stereo pairs of `vggts eval pairs`).

Each photo is scaled to a working resolution once, kept with an anti-aliasing pyramid (for views that
zoom far out) and its segmentation (for pseudo-objects), and cached for the life of the process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from vggts_cli.augment import pyramid
from vggts_cli.errors import VggtsError
from vggts_cli.train.regions import Segmentation, segment

# skimage.data images that ship inside the wheel (no download): natural photos, microscopy, textures.
SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "retina",
    "hubble_deep_field",
    "camera",
    "coins",
    "moon",
    "brick",
    "grass",
    "gravel",
)
WORK_SIDE = 320  # longest side of a photo as used (segmentation cost grows with its square)


@dataclass(frozen=True)
class Photo:
    """A photograph at working resolution: pyramid levels (RGB uint8, level k is 2^-k the size) and the
    segmentation of level 0."""

    name: str
    levels: tuple[np.ndarray, ...]
    segmentation: Segmentation

    @property
    def hw(self) -> tuple[int, int]:
        height, width = self.levels[0].shape[:2]
        return height, width


@functools.cache
def photo_names() -> tuple[str, ...]:
    """Every training photo, as `skimage:<name>`."""
    return tuple(f"skimage:{name}" for name in SKIMAGE_PHOTOS)


@functools.cache
def load_photo(name: str) -> Photo:
    """The photo `name` (from `photo_names`) at working resolution, with its pyramid and segmentation."""
    try:
        import skimage  # noqa: F401  (the sample images and the segmentation both come from it)
    except ImportError:
        raise VggtsError("training needs scikit-image: pip install 'vggts[train]'") from None
    image = _read(name)
    scale = WORK_SIDE / max(image.shape[:2])
    if scale < 1:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    levels = pyramid(image)
    return Photo(name, levels, segment(levels[0]))


def _read(name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a photo name."""
    from skimage import data

    image = getattr(data, name.removeprefix("skimage:"))()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.asarray(image[..., :3], dtype=np.uint8)
