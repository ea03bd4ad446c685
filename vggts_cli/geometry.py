"""Geometry of frames and model inputs: the one box type, the letterbox, framings (whole or through a
square crop), and the crop's way back to the frame.

Conventions: images are (H, W, ...) arrays; points are (x, y); a `Box` is half-open, `[x0, x1) × [y0, y1)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

PAD_VALUE = 114  # letterbox padding (grey), as in VGGT-S's exo-frame preprocessing
OUTSIDE_LOGIT = -32.0  # logit given to every pixel outside a crop (= the head's clamp value)


@dataclass(frozen=True)
class Box:
    """A half-open pixel rectangle `[x0, x1) × [y0, y1)`."""

    x0: int
    y0: int
    x1: int
    y1: int

    def __iter__(self) -> Iterator[int]:
        """`x0, y0, x1, y1 = box`."""
        return iter((self.x0, self.y0, self.x1, self.y1))

    @property
    def slices(self) -> tuple[slice, slice]:
        """Index an (H, W, ...) array with `array[box.slices]`."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def size(self) -> int:
        """The long side."""
        return max(self.width, self.height)

    def corners(self) -> np.ndarray:
        """(4, 2) float64 corners, clockwise on screen from the top left."""
        return np.array(
            [[self.x0, self.y0], [self.x1, self.y0], [self.x1, self.y1], [self.x0, self.y1]], np.float64
        )

    def union(self, other: Box) -> Box:
        return Box(
            min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1)
        )

    def grow(self, pad: int, height: int, width: int) -> Box:
        """The box enlarged by `pad` pixels on every side, clipped to a (height, width) frame."""
        return Box(
            max(0, self.x0 - pad),
            max(0, self.y0 - pad),
            min(width, self.x1 + pad),
            min(height, self.y1 + pad),
        )


def bbox(mask: np.ndarray) -> Box | None:
    """The tightest box around the pixels of an (H, W) bool mask; None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    return Box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


@dataclass(frozen=True)
class SquareCrop:
    """A `side`×`side` crop with top-left corner (x1, y1) inside a `frame_h`×`frame_w` frame.

    This is the official recovery `meta` (x1, y1, x2, y2, crop_size, ori_h, ori_w); H = W is the size of
    the model input the crop was resized to, which the recovery functions read from their inputs.
    """

    x1: int
    y1: int
    side: int
    frame_h: int
    frame_w: int

    @property
    def x2(self) -> int:
        return self.x1 + self.side

    @property
    def y2(self) -> int:
        return self.y1 + self.side


def crop_around_points(points: np.ndarray, side: int, frame_h: int, frame_w: int) -> SquareCrop:
    """Square crop of `side` centred on the bounding box of `points` (N, 2) (x, y), kept inside the frame.

    The corner is `round(centre - side / 2)` (ties to even) and then clamped; the frame is never padded,
    so `side` must not exceed the frame's shorter side.
    """
    cx = (points[:, 0].min() + points[:, 0].max()) / 2.0
    cy = (points[:, 1].min() + points[:, 1].max()) / 2.0
    x1 = int(np.clip(round(cx - side / 2.0), 0, frame_w - side))
    y1 = int(np.clip(round(cy - side / 2.0), 0, frame_h - side))
    return SquareCrop(x1=x1, y1=y1, side=int(side), frame_h=int(frame_h), frame_w=int(frame_w))


def resize_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners False) of logits (h, w) to `size` = (H, W)."""
    return F.interpolate(logits[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]


def recover_square_crop(logits: torch.Tensor, crop: SquareCrop) -> torch.Tensor:
    """Logits (S, S) of a resized crop -> logits (frame_h, frame_w) of the whole frame.

    The crop's logits are resized to side×side and pasted at the crop; everything else is
    `OUTSIDE_LOGIT` (background). Threshold the result at 0 for the mask.
    """
    canvas = torch.full((crop.frame_h, crop.frame_w), OUTSIDE_LOGIT, dtype=logits.dtype, device=logits.device)
    canvas[crop.y1 : crop.y2, crop.x1 : crop.x2] = resize_logits(logits, (crop.side, crop.side))
    return canvas


@dataclass(frozen=True)
class Letterbox:
    """A frame of `frame_hw` = (H, W) resized, aspect kept, to `content_hw` = (h, w) at the top-left of a
    `size`×`size` model input; the rest (bottom/right) is padding."""

    frame_hw: tuple[int, int]
    content_hw: tuple[int, int]
    size: int

    @classmethod
    def fit(cls, frame_hw: tuple[int, int], size: int) -> Letterbox:
        """The largest aspect-preserving fit of a frame (H, W) into `size`×`size`."""
        height, width = frame_hw
        scale = size / max(height, width)
        content = (min(size, max(1, round(height * scale))), min(size, max(1, round(width * scale))))
        return cls(frame_hw=(height, width), content_hw=content, size=size)

    def image(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (size, size, 3) uint8 (area-averaged when shrinking)."""
        h, w = self.content_hw
        shrink = h < self.frame_hw[0]
        resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        canvas = np.full((self.size, self.size, 3), PAD_VALUE, dtype=np.uint8)
        canvas[:h, :w] = resized
        return canvas

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """(H, W) bool -> (size, size) bool: pixels at least half covered by the object, or, when that
        leaves nothing (an object thinner than a model pixel), every pixel the object touches."""
        h, w = self.content_hw
        coverage = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        resized = coverage >= 0.5
        if not resized.any():
            resized = coverage > 0
        canvas = np.zeros((self.size, self.size), dtype=bool)
        canvas[:h, :w] = resized
        return canvas

    def content(self, logits: torch.Tensor) -> torch.Tensor:
        """(size, size) -> the (h, w) part that is image, not padding."""
        h, w = self.content_hw
        return logits[:h, :w]

    def unmap_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Model-input logits (size, size) -> frame logits (H, W): crop the padding, resize bilinearly."""
        return resize_logits(self.content(logits), self.frame_hw)


@dataclass(frozen=True)
class Framing:
    """A frame (H, W) seen through the square `crop` (None: whole), letterboxed into a `size`×`size` model
    input."""

    frame_hw: tuple[int, int]
    crop: SquareCrop | None
    size: int

    @property
    def letterbox(self) -> Letterbox:
        """The letterbox of what is seen: the whole frame, or the crop."""
        seen = self.frame_hw if self.crop is None else (self.crop.side, self.crop.side)
        return Letterbox.fit(seen, self.size)

    def _cut(self, array: np.ndarray) -> np.ndarray:
        c = self.crop
        return array if c is None else array[c.y1 : c.y2, c.x1 : c.x2]

    def image(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (size, size, 3) uint8 model input."""
        return self.letterbox.image(np.ascontiguousarray(self._cut(image)))

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """(H, W) bool -> (size, size) bool; the part outside the crop is dropped."""
        return self.letterbox.mask(self._cut(mask))

    def unmap_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Model-input logits (size, size) -> frame logits (H, W); outside the crop: background."""
        if self.crop is None:
            return self.letterbox.unmap_logits(logits)
        return recover_square_crop(logits, self.crop)
