"""Point prompts of the Union Segmentation Head (official §3).

Source points: K-Means centres of the source mask, snapped onto the mask (`kmeans_points`), and the
VGGT features under them (`sample_point_features`). Target points for ego→exo: the tracked points scaled
into the exo frame, cleaned of outliers, a square crop chosen around them, and 5 K-Means centres in crop
space (`exo_target_points`). The scikit-learn calls and the numpy sort / set orders are the official
ones, so the integer outputs match it exactly (for the same scikit-learn version).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans

from vggts_cli.model.crops import SquareCrop, crop_around_points
from vggts_cli.threads import single_threaded

SOURCE_SEED = 42  # KMeans random_state of the source points
TARGET_SEED = 0  # KMeans random_state of the target clusters


def _fit(kmeans: KMeans, points: np.ndarray) -> KMeans:
    """`kmeans.fit(points)` on one OpenMP thread: with torch's and scikit-learn's OpenMP runtimes both
    loaded, a threaded K-Means of a few thousand pixels runs tens of times slower (~190 ms vs ~2-5 ms)."""
    with single_threaded("openmp"):
        return kmeans.fit(points)


def kmeans_points(mask: np.ndarray, n_points: int = 5) -> np.ndarray:
    """K-Means source points of `mask` (H, W) (nonzero = object) -> (n_points, 2) float32 integer (x, y).

    - empty mask: all (0, 0);
    - fewer object pixels than `n_points`: all of them (row-major), padded with the first;
    - else KMeans(n_points, random_state 42, n_init 1) on the pixel coordinates; each centre is rounded
      (ties to even) and kept if that pixel is on the mask, otherwise replaced by the nearest object pixel
      not already chosen. The picks live in a Python set — duplicates collapse and the order is the set's
      iteration order, as in the official code — and are padded with the first one.
    """
    on = np.asarray(mask) > 0
    if not on.any():
        return np.zeros((n_points, 2), dtype=np.float32)
    candidates = np.fliplr(np.argwhere(on).astype(np.float32))  # (x, y), row-major order
    if len(candidates) < n_points:
        return _pad_with_first(candidates, n_points)

    centres = _fit(
        KMeans(n_clusters=n_points, random_state=SOURCE_SEED, n_init=1), candidates
    ).cluster_centers_
    h, w = on.shape
    picks: set[tuple[int, int]] = set()
    for centre in centres:
        x, y = round(float(centre[0])), round(float(centre[1]))
        if 0 <= x < w and 0 <= y < h and on[y, x]:
            picks.add((x, y))
            continue
        for idx in np.argsort(np.linalg.norm(candidates - centre, axis=1)):
            candidate = (int(candidates[idx, 0]), int(candidates[idx, 1]))
            if candidate not in picks:
                picks.add(candidate)
                break
    return _pad_with_first(np.array(list(picks), dtype=np.float32), n_points)


def _pad_with_first(points: np.ndarray, n_points: int) -> np.ndarray:
    """(M, 2) -> (n_points, 2) by repeating row 0 (M <= n_points)."""
    padding = np.tile(points[0], (n_points - len(points), 1))
    return np.concatenate([points, padding]).astype(np.float32)


def sample_point_features(feat: torch.Tensor, points: torch.Tensor, img_size: int) -> torch.Tensor:
    """Bilinear features (B, C, h, w) at points (B, N, 2) (x, y) in `img_size` pixels -> (B, N, C).

    Pixel 0 maps to the first cell and pixel img_size - 1 to the last (align_corners), out-of-image
    points are clamped to the border.
    """
    grid = (2 * points.float() / (img_size - 1) - 1).clamp(-1, 1)
    sampled = F.grid_sample(
        feat, grid[:, :, None], mode="bilinear", padding_mode="border", align_corners=True
    )
    return sampled[..., 0].transpose(1, 2)


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
    kmeans = _fit(KMeans(n_clusters=n_clusters, random_state=TARGET_SEED, n_init="auto"), points)
    return kmeans.cluster_centers_


def exo_target_points(
    tracked: np.ndarray, img_size: int, frame_h: int, frame_w: int, n_points: int = 5, n_drop: int = 10
) -> tuple[np.ndarray, SquareCrop]:
    """Ego→exo target points: tracked points (50, 2) in the model input -> (n_points, 2) in the crop, crop.

    Scale into the frame and clip, drop `n_drop` outliers, crop side from the box size (3× rule), square
    window on the box centre, map into the `img_size` crop, K-Means centres. The crop is also where the
    target frame must be cut (`crops.crop_resize`) and where the prediction is pasted back
    (`crops.recover_square_crop`).
    """
    kept = drop_outliers(frame_points(tracked, img_size, frame_h, frame_w), n_drop)
    box_size = max(np.ptp(kept[:, 1]), np.ptp(kept[:, 0]))
    crop = crop_around_points(kept, crop_side_3x(box_size), frame_h, frame_w)
    return cluster_centres(points_into_crop(kept, crop, img_size), n_points), crop
