"""The official ego→exo crop chain (official §3 and §5), kept with the tests that check our model against
the official test vectors; the engine frames its inputs its own way (vggts_cli/engines/learned/focus.py).

Two crops feed the head: the source is zoomed onto its mask (`zoom_source`, R = 2) and the target is a
square window chosen from tracked points (`exo_target_points`: the tracked points scaled into the exo
frame, cleaned of outliers, a square crop chosen around them, and 5 K-Means centres in crop space).
After the head, `geometry.recover_square_crop` pastes the crop's logits back into the full frame; frames
that were only resized go back with `geometry.resize_logits` / `rescale_points`. Thresholds everywhere:
logit > 0. The scikit-learn calls and the numpy orders are the official ones.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from sklearn.cluster import KMeans

from vggts_cli.geometry import SquareCrop, crop_around_points
from vggts_cli.model.points import fit_one_thread

TARGET_SEED = 0  # KMeans random_state of the target clusters


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


def recover_crop_points(points: torch.Tensor, crop: SquareCrop, size: int) -> torch.Tensor:
    """Points (N, 2) (x, y) in the `size`×`size` crop input -> pixels of the whole frame."""
    scale = crop.side / float(size)
    return torch.stack([points[:, 0] * scale + crop.x1, points[:, 1] * scale + crop.y1], dim=1)


def rescale_points(points: torch.Tensor, src_size: int, dst_size: int) -> torch.Tensor:
    """Points in a `src_size` square image -> the same image resized to `dst_size` (official: p / H * 704)."""
    return points / src_size * dst_size


def frame_points(points: np.ndarray, img_size: int, frame_h: int, frame_w: int) -> np.ndarray:
    """Tracked points (N, 2) in the `img_size` letterboxed model input -> pixels of the frame, clipped.

    The letterbox keeps the aspect and pads at the bottom/right, so both axes scale by frame_w / img_size
    (the official code hard-codes 960 / 518).
    """
    out = points * frame_w / img_size
    out[:, 0] = np.clip(out[:, 0], 0, frame_w - 1)
    out[:, 1] = np.clip(out[:, 1], 0, frame_h - 1)
    return out


def drop_outliers(points: np.ndarray, n_drop: int = 10) -> np.ndarray:
    """Drop the `n_drop` points farthest from the coordinate-wise median; the rest by decreasing distance."""
    dist = np.linalg.norm(points - np.median(points, axis=0), axis=1)
    return points[np.argsort(-dist)[n_drop:]]


def crop_side_3x(box_size: float) -> int:
    """Target crop side for a point box of `box_size` px (official `exo_tar_crop: 3`): 180 … 540."""
    if box_size < 50:
        return 180
    if box_size > 200:
        return 540
    return int(2.4 * (box_size - 50) + 180)


def points_into_crop(points: np.ndarray, crop: SquareCrop, size: int) -> np.ndarray:
    """Frame pixels (N, 2) -> the crop resized to `size`×`size`, clipped to [0, size - 1]; float32."""
    scale = size / crop.side
    out = points.copy()
    out[:, 0] = np.clip((out[:, 0] - crop.x1) * scale, 0, size - 1)
    out[:, 1] = np.clip((out[:, 1] - crop.y1) * scale, 0, size - 1)
    return out.astype(np.float32)


def cluster_centres(points: np.ndarray, n_clusters: int = 5) -> np.ndarray:
    """KMeans(n_clusters, random_state 0, n_init "auto") centres of `points` (N, 2), scikit-learn order.

    The centres are the target points as they are: float, not snapped to anything.
    """
    kmeans = fit_one_thread(KMeans(n_clusters=n_clusters, random_state=TARGET_SEED, n_init="auto"), points)
    return kmeans.cluster_centers_


def exo_target_points(
    tracked: np.ndarray, img_size: int, frame_h: int, frame_w: int, n_points: int = 5, n_drop: int = 10
) -> tuple[np.ndarray, SquareCrop]:
    """Ego→exo target points: tracked points (50, 2) in the model input -> (n_points, 2) in the crop, crop.

    Scale into the frame and clip, drop `n_drop` outliers, crop side from the box size (3× rule), square
    window on the box centre, map into the `img_size` crop, K-Means centres. The crop is also where the
    target frame must be cut (`crop_resize`) and where the prediction is pasted back
    (`geometry.recover_square_crop`).
    """
    kept = drop_outliers(frame_points(tracked, img_size, frame_h, frame_w), n_drop)
    box_size = max(np.ptp(kept[:, 1]), np.ptp(kept[:, 0]))
    crop = crop_around_points(kept, crop_side_3x(box_size), frame_h, frame_w)
    return cluster_centres(points_into_crop(kept, crop, img_size), n_points), crop
