"""How a camera frame enters the learned model: whole (letterboxed) or through a square focus window.

At the model's input size an exocentric camera's object is often a few model pixels wide: the head cannot
draw it and the tracker's points land on look-alikes. So the engine *focuses*: it looks at a square window
of the frame, `FOCUS_ZOOM` times the object's size, resized to the model input. Where the object is comes
from the camera's previous mask (`window_around` its box) or, without one, from a first look at the whole
frame (`search_box` of its logits). Objects that already fill a good part of the frame are seen whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from vggts_cli.model.crops import SquareCrop, crop_around_points, recover_square_crop, resize_logits

PAD_VALUE = 114  # letterbox padding (grey), as in VGGT-S's exo-frame preprocessing
FOCUS_ZOOM = 3.0  # window side / the object's box side: the object plus its surroundings
FOCUS_MIN = 0.25  # smallest window, a fraction of the frame's shorter side (keeps enough context)
FOCUS_MAX = 0.9  # an object that needs a larger window is seen whole: zooming would gain little
KEEP_MAX = 1.0  # ... but a focused camera stays focused up to the whole shorter side (no flicker)
KEEP_MARGIN = 1 / 8  # a window is kept while the object stays this fraction of its side from its edges
KEEP_SCALE = 1.5  # ... and while the window the object would get now is within this factor of it
SEARCH_BAND = 2.0  # with nothing predicted, the search looks at logits within this of the best one

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), inclusive pixel bounds


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
    """A frame (H, W) seen through `window` (None: whole), letterboxed into a `size`×`size` model input."""

    frame_hw: tuple[int, int]
    window: SquareCrop | None
    size: int

    @property
    def box(self) -> Letterbox:
        seen = self.frame_hw if self.window is None else (self.window.side, self.window.side)
        return Letterbox.fit(seen, self.size)

    def _cut(self, array: np.ndarray) -> np.ndarray:
        w = self.window
        return array if w is None else array[w.y1 : w.y2, w.x1 : w.x2]

    def image(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (size, size, 3) uint8 model input."""
        return self.box.image(np.ascontiguousarray(self._cut(image)))

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """(H, W) bool -> (size, size) bool; the part outside the window is dropped."""
        return self.box.mask(self._cut(mask))

    def unmap_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Model-input logits (size, size) -> frame logits (H, W); outside the window: background."""
        if self.window is None:
            return self.box.unmap_logits(logits)
        return recover_square_crop(logits, self.window)


def object_box(mask: np.ndarray) -> Box | None:
    """Inclusive bounding box of a (H, W) bool mask; None when empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def window_around(box: Box, frame_hw: tuple[int, int], limit: float = FOCUS_MAX) -> SquareCrop | None:
    """The focus window for an object with this box: side FOCUS_ZOOM × the box's longer side (at least
    FOCUS_MIN of the frame's shorter side), centred on the box and shifted inside the frame; None when it
    would exceed `limit` × the shorter side (the object is large enough to be seen whole)."""
    height, width = frame_hw
    shorter = min(height, width)
    x0, y0, x1, y1 = box
    side = max(FOCUS_ZOOM * max(x1 - x0 + 1, y1 - y0 + 1), FOCUS_MIN * shorter)
    if side > limit * shorter:
        return None
    corners = np.array([[x0, y0], [x1, y1]], dtype=np.float64)
    return crop_around_points(corners, round(side), height, width)


def still_fits(window: SquareCrop, box: Box) -> bool:
    """Whether `window` still suits an object now at `box`: the object keeps KEEP_MARGIN of the window's
    side from each edge (an edge on the frame's border needs none) and the window it would get afresh is
    within KEEP_SCALE of this one. Keeping windows steady keeps the masks steady and cached work valid."""
    fresh = window_around(box, (window.frame_h, window.frame_w), KEEP_MAX)
    if fresh is None or not 1 / KEEP_SCALE <= fresh.side / window.side <= KEEP_SCALE:
        return False
    margin = KEEP_MARGIN * window.side
    x0, y0, x1, y1 = box
    return (
        (window.x1 == 0 or x0 - window.x1 >= margin)
        and (window.y1 == 0 or y0 - window.y1 >= margin)
        and (window.x2 == window.frame_w or window.x2 - 1 - x1 >= margin)
        and (window.y2 == window.frame_h or window.y2 - 1 - y1 >= margin)
    )


def search_box(logits: torch.Tensor) -> Box:
    """Where a whole-frame look puts the object: frame logits (H, W) -> the box of the connected region
    around the best logit — the predicted object, or with nothing predicted, the pixels within
    SEARCH_BAND of the best logit."""
    values = logits.float().cpu().numpy()
    region = values > 0
    if not region.any():
        region = values >= values.max() - SEARCH_BAND
    _, labels = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
    best = np.unravel_index(np.argmax(np.where(region, values, -np.inf)), values.shape)
    box = object_box(labels == labels[best])
    assert box is not None  # the best pixel is in its own region
    return box
