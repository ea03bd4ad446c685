"""Small pure helpers on (H, W) bool masks."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vggts_cli.geometry import Box, bbox

__all__ = ["Box", "bbox", "dilate", "dilated_union", "iou", "paste"]


def dilated_union(masks: Sequence[np.ndarray], margin_px: int) -> tuple[Box, np.ndarray] | None:
    """Union of same-size masks grown by a round `margin_px`, as (box, (box.height, box.width) bool crop).

    Only the union's bounding box plus the margin is touched, so the cost follows the object's size, not
    the frame's. None when every mask is empty.
    """
    boxes = [b for b in map(bbox, masks) if b is not None]
    if not boxes:
        return None
    height, width = masks[0].shape
    box = boxes[0]
    for other in boxes[1:]:
        box = box.union(other)
    box = box.grow(margin_px, height, width)
    crop = np.zeros((box.height, box.width), dtype=bool)
    for mask in masks:
        crop |= mask[box.slices]
    if margin_px > 0:
        # A Euclidean distance transform grows the mask by a disc in linear time, whatever the margin
        # (a morphological dilation with a large disc kernel costs margin x pixels).
        distance = cv2.distanceTransform((~crop).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        crop = distance <= margin_px
    return box, crop


def dilate(mask: np.ndarray, margin_px: int) -> np.ndarray:
    """(H, W) bool mask grown by a disc of radius `margin_px` pixels."""
    out = np.zeros_like(mask, dtype=bool)
    grown = dilated_union([mask], margin_px)
    if grown is not None:
        box, crop = grown
        out[box.slices] = crop
    return out


def paste(source: np.ndarray, where: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(h, w, C) `target` with `source`'s pixels where the (h, w) bool `where` is set; may write into `target`
    itself, so use the returned array. OpenCV's masked copy is many times faster than boolean indexing."""
    return cv2.copyTo(np.ascontiguousarray(source), where.view(np.uint8), target)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (H, W) bool masks; 1.0 when both are empty (they agree)."""
    union = np.count_nonzero(a | b)
    if union == 0:
        return 1.0
    return np.count_nonzero(a & b) / union
