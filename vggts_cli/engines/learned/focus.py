"""Where the learned engine looks: the whole (letterboxed) frame, or a square focus crop around the object.

At the model's input size an exocentric camera's object is often a few model pixels wide: the head cannot
draw it and the tracker's points land on look-alikes. So the engine *focuses*: it looks at a square crop
of the frame, `FOCUS_ZOOM` times the object's size, resized to the model input. Where the object is comes
from the camera's previous mask (`focus_crop` its box) or, without one, from a first look at the whole
frame (`search_box` of its logits). Objects that already fill a good part of the frame are seen whole.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from vggts_cli.geometry import Box, SquareCrop, bbox, crop_around_points

FOCUS_ZOOM = 3.0  # crop side / the object's box side: the object plus its surroundings
FOCUS_MIN = 0.25  # smallest crop, a fraction of the frame's shorter side (keeps enough context)
FOCUS_MAX = 0.9  # an object that needs a larger crop is seen whole: zooming would gain little
KEEP_MAX = 1.0  # ... but a focused camera stays focused up to the whole shorter side (no flicker)
KEEP_MARGIN = 1 / 8  # a crop is kept while the object stays this fraction of its side from its edges
KEEP_SCALE = 1.5  # ... and while the crop the object would get now is within this factor of it
SEARCH_BAND = 2.0  # with nothing predicted, the search looks at logits within this of the best one


def focus_crop(box: Box, frame_hw: tuple[int, int], limit: float = FOCUS_MAX) -> SquareCrop | None:
    """The focus crop for an object with this box: side FOCUS_ZOOM × the box's longer side (at least
    FOCUS_MIN of the frame's shorter side), centred on the box and shifted inside the frame; None when it
    would exceed `limit` × the shorter side (the object is large enough to be seen whole)."""
    height, width = frame_hw
    shorter = min(height, width)
    side = max(FOCUS_ZOOM * max(box.width, box.height), FOCUS_MIN * shorter)
    if side > limit * shorter:
        return None
    corners = np.array([[box.x0, box.y0], [box.x1 - 1, box.y1 - 1]], dtype=np.float64)  # outermost pixels
    return crop_around_points(corners, round(side), height, width)


def still_fits(crop: SquareCrop, box: Box) -> bool:
    """Whether the focus `crop` still suits an object now at `box`: the object keeps KEEP_MARGIN of the crop's
    side from each edge (an edge on the frame's border needs none) and the crop it would get afresh is
    within KEEP_SCALE of this one. Keeping crops steady keeps the masks steady and cached work valid."""
    fresh = focus_crop(box, (crop.frame_h, crop.frame_w), KEEP_MAX)
    if fresh is None or not 1 / KEEP_SCALE <= fresh.side / crop.side <= KEEP_SCALE:
        return False
    return within(crop, box)


def within(crop: SquareCrop, box: Box) -> bool:
    """Whether `box` keeps KEEP_MARGIN of the crop's side from each of its edges (an edge on the frame's
    border needs none): an object there is seen through the crop with its surroundings."""
    margin = KEEP_MARGIN * crop.side
    return (
        (crop.x1 == 0 or box.x0 - crop.x1 >= margin)
        and (crop.y1 == 0 or box.y0 - crop.y1 >= margin)
        and (crop.x2 == crop.frame_w or crop.x2 - box.x1 >= margin)
        and (crop.y2 == crop.frame_h or crop.y2 - box.y1 >= margin)
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
    box = bbox(labels == labels[best])
    assert box is not None  # the best pixel is in its own region
    return box
