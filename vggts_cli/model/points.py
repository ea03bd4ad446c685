"""Point prompts of the Union Segmentation Head (official §3).

Source points: K-Means centres of the source mask, snapped onto the mask (`kmeans_points`), and the
VGGT features under them (`sample_point_features`). The scikit-learn calls and the numpy sort / set orders
are the official ones, so the integer outputs match it exactly (for the same scikit-learn version).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans

from vggts_cli.threads import single_threaded

SOURCE_SEED = 42  # KMeans random_state of the source points


def fit_one_thread(kmeans: KMeans, points: np.ndarray) -> KMeans:
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

    centres = fit_one_thread(
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
