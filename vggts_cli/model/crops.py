"""Square crops around the object and their recovery to the original frame (official §5).

Two crops feed the head: the source is zoomed onto its mask (`zoom_source`, R = 2) and the target is a
square window chosen from tracked points (`crop_around_points`, see `points.exo_target_points`). After
the head, `recover_square_crop` pastes the crop's logits back into the full frame; frames that were only
resized go back with `resize_logits` / `rescale_points`. Thresholds everywhere: logit > 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

OUTSIDE_LOGIT = -32.0  # logit given to every pixel outside the crop (= the head's clamp value)


@dataclass(frozen=True)
class SquareCrop:
    """A `side`×`side` window with top-left corner (x1, y1) inside a `frame_h`×`frame_w` frame.

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
    """Square window of `side` centred on the bounding box of `points` (N, 2) (x, y), kept inside the frame.

    The corner is `round(centre - side / 2)` (ties to even) and then clamped; the frame is never padded,
    so `side` must not exceed the frame's shorter side.
    """
    cx = (points[:, 0].min() + points[:, 0].max()) / 2.0
    cy = (points[:, 1].min() + points[:, 1].max()) / 2.0
    x1 = int(np.clip(round(cx - side / 2.0), 0, frame_w - side))
    y1 = int(np.clip(round(cy - side / 2.0), 0, frame_h - side))
    return SquareCrop(x1=x1, y1=y1, side=int(side), frame_h=int(frame_h), frame_w=int(frame_w))


def crop_resize(image: np.ndarray, box: tuple[int, int, int, int], size: int, nearest: bool) -> np.ndarray:
    """Cut `box` = (x1, y1, x2, y2) out of `image` (H, W[, C]) and resize it to `size`×`size`.

    Images use INTER_AREA, masks `nearest=True` (INTER_NEAREST), as the official loader does.
    """
    x1, y1, x2, y2 = box
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return cv2.resize(image[y1:y2, x1:x2], (size, size), interpolation=interpolation)


def mask_zoom_box(mask: np.ndarray, ratio: float = 2.0) -> tuple[int, int, int, int]:
    """Window (x1, y1, x2, y2) that zooms `ratio`× onto the object of `mask` (H, W) without cutting it.

    Side = max(int(H / ratio), bbox width, bbox height), centred on the bbox centre (integer halves) and
    shifted to stay inside; an empty mask gets a centred window of side int(H / ratio). As in the official
    code, the integer halves can leave the object's last row / column just outside an even-sided window.
    """
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        side = int(h / ratio)
        x1 = max(0, min(w // 2 - side // 2, w - side))
        y1 = max(0, min(h // 2 - side // 2, h - side))
        return x1, y1, x1 + side, y1 + side
    x_min, x_max, y_min, y_max = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    side = max(int(h / ratio), x_max - x_min + 1, y_max - y_min + 1)
    x1 = (x_min + x_max) // 2 - side // 2
    y1 = (y_min + y_max) // 2 - side // 2
    # Shift the window inside the frame; the final clamp only bites when it is larger than the frame.
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = x1 + side, y1 + side
    x1, y1 = x1 - max(x2 - w, 0), y1 - max(y2 - h, 0)
    return max(0, x1), max(0, y1), min(w, x2), min(h, y2)


def zoom_source(
    image: np.ndarray, mask: np.ndarray, ratio: float = 2.0
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """The official source zoom: crop `image` (S, S, 3), `mask` (S, S) {0, 1} by `mask_zoom_box`, resize to S.

    Returns (image, mask, box). If the zoomed mask comes out empty (a thin object lost by the nearest
    resize) the inputs are returned unchanged with the whole frame as box, as the official loader does.
    """
    h, w = mask.shape
    box = mask_zoom_box(mask, ratio)
    zoomed_mask = crop_resize(mask, box, h, nearest=True)
    if zoomed_mask.sum() == 0:
        return image, mask, (0, 0, w, h)
    return crop_resize(image, box, h, nearest=False), zoomed_mask, box


def resize_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners False) of logits (h, w) to `size` = (H, W)."""
    return F.interpolate(logits[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]


def recover_square_crop(logits: torch.Tensor, crop: SquareCrop) -> torch.Tensor:
    """Logits (S, S) of a resized crop -> logits (frame_h, frame_w) of the whole frame.

    The crop's logits are resized to side×side and pasted at the window; everything else is
    `OUTSIDE_LOGIT` (background). Threshold the result at 0 for the mask.
    """
    canvas = torch.full((crop.frame_h, crop.frame_w), OUTSIDE_LOGIT, dtype=logits.dtype, device=logits.device)
    canvas[crop.y1 : crop.y2, crop.x1 : crop.x2] = resize_logits(logits, (crop.side, crop.side))
    return canvas


def recover_crop_points(points: torch.Tensor, crop: SquareCrop, size: int) -> torch.Tensor:
    """Points (N, 2) (x, y) in the `size`×`size` crop input -> pixels of the whole frame."""
    scale = crop.side / float(size)
    return torch.stack([points[:, 0] * scale + crop.x1, points[:, 1] * scale + crop.y1], dim=1)


def rescale_points(points: torch.Tensor, src_size: int, dst_size: int) -> torch.Tensor:
    """Points in a `src_size` square image -> the same image resized to `dst_size` (official: p / H * 704)."""
    return points / src_size * dst_size
