"""Per-frame correspondence metrics with the Ego-Exo4D evaluator's conventions, and their accumulation.

The official evaluator (EGO4D/ego-exo4d-relation, correspondence/evaluation) scores masks at its own size
(longest side 480) with DAVIS region and boundary measures, a bounding-box location error and a balanced
accuracy of "is the object there". Its quirks are kept on purpose so that numbers are comparable: the
location error pads by the height on every side, normalises by a fixed 480×480 diagonal, and gives an empty
prediction a centre with swapped axes.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
from sklearn.metrics import balanced_accuracy_score

EVAL_SIDE = 480  # the evaluator's longest side, pixels
LOCATION_NORM = math.hypot(480, 480)  # fixed, whatever the evaluation size
BOUND_TH = 0.008  # boundary tolerance as a fraction of the image diagonal
CONF_THRESH = 0.5  # a prediction says "present" when its confidence is above this


def eval_size(height: int, width: int, side: int = EVAL_SIDE) -> tuple[int, int]:
    """(H, W) of a mask resized so that its longest side is `side`, truncated as the evaluator does.

    The ratio is formed as (1 / longest) · side, in that order: `side / longest` rounds 704 down to 479.
    """
    ratio = 1.0 / max(height, width) * side
    return int(height * ratio), int(width * ratio)


def to_eval_size(mask: np.ndarray, side: int = EVAL_SIDE) -> np.ndarray:
    """(H, W) bool -> (h, w) bool at `eval_size`, nearest neighbour (no padding, aspect kept)."""
    h, w = eval_size(*mask.shape, side=side)
    return resize_mask(mask, (h, w))


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool -> `size` = (h, w) bool, nearest neighbour; returned as is when already that size."""
    if mask.shape == tuple(size):
        return mask.astype(bool)
    resized = cv2.resize(mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return resized.astype(bool)


def iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """DAVIS Jaccard of two (H, W) masks of equal size; 1.0 when both are empty."""
    _same_shape(gt, pred)
    gt, pred = gt.astype(bool), pred.astype(bool)
    union = np.count_nonzero(gt | pred)
    if union == 0:
        return 1.0
    return np.count_nonzero(gt & pred) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W) bool, one pixel wide: pixels that differ from their right, lower or lower-right
    neighbour (the boundary sits half a pixel towards the origin); the last row and column compare along
    the edge only, and the corner pixel is never a boundary."""
    m = mask.astype(bool)
    right = np.zeros_like(m)
    below = np.zeros_like(m)
    diagonal = np.zeros_like(m)
    right[:, :-1] = m[:, 1:]
    below[:-1, :] = m[1:, :]
    diagonal[:-1, :-1] = m[1:, 1:]
    edges = (m ^ right) | (m ^ below) | (m ^ diagonal)
    edges[-1, :] = m[-1, :] ^ right[-1, :]
    edges[:, -1] = m[:, -1] ^ below[:, -1]
    edges[-1, -1] = False
    return edges


def disk(radius: int) -> np.ndarray:
    """(2r+1, 2r+1) uint8 structuring element: the pixels within `radius` of the centre (Euclidean)."""
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def boundary_f(gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH) -> float:
    """DAVIS boundary F-measure ("contour accuracy") of two (H, W) masks of equal size.

    A boundary pixel of one mask matches when a boundary pixel of the other lies within
    ceil(bound_th · diagonal) pixels (a disk dilation); precision and recall of the matches give F.
    """
    _same_shape(gt, pred)
    tolerance = bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*gt.shape))
    kernel = disk(int(tolerance))
    gt_edges, pred_edges = boundary_map(gt), boundary_map(pred)
    n_gt, n_pred = np.count_nonzero(gt_edges), np.count_nonzero(pred_edges)
    # Degenerate cases as DAVIS defines them: nothing to match counts as perfect on that side.
    if n_pred == 0 or n_gt == 0:
        precision = 1.0 if n_pred == 0 else 0.0
        recall = 1.0 if n_gt == 0 else 0.0
    else:
        near_gt = cv2.dilate(gt_edges.astype(np.uint8), kernel).astype(bool)
        near_pred = cv2.dilate(pred_edges.astype(np.uint8), kernel).astype(bool)
        precision = np.count_nonzero(pred_edges & near_gt) / n_pred
        recall = np.count_nonzero(gt_edges & near_pred) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def box_centre(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) centre of the bounding box of an (H, W) mask padded by H on every side, in integer pixels.

    An empty mask gets (padded_H // 2, padded_W // 2): x from the height and y from the width, the
    official evaluator's swapped "canvas centre", kept for comparable numbers.
    """
    pad = mask.shape[0]
    padded_h, padded_w = mask.shape[0] + 2 * pad, mask.shape[1] + 2 * pad
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return padded_h // 2, padded_w // 2
    return (int(xs.min() + xs.max()) + 2 * pad) // 2, (int(ys.min() + ys.max()) + 2 * pad) // 2


def location_error(gt: np.ndarray, pred: np.ndarray) -> float:
    """Distance between the bounding-box centres of two (H, W) masks of equal size, / √(480² + 480²)."""
    _same_shape(gt, pred)
    (gx, gy), (px, py) = box_centre(gt), box_centre(pred)
    return math.hypot(gx - px, gy - py) / LOCATION_NORM


def balanced_accuracy(gt_exists: list[int], pred_exists: list[int]) -> float:
    """sklearn's balanced accuracy of presence labels (the mean recall over the classes in `gt_exists`)."""
    with warnings.catch_warnings():  # one class only (every frame visible): sklearn warns, then averages
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(gt_exists, pred_exists))


def presence_recalls(gt_exists: list[int], pred_exists: list[int]) -> tuple[float | None, float | None]:
    """The two recalls the balanced accuracy averages: the share of targets showing the object that were
    said to show it, and of targets without it said not to; None for a class with no target. The mean
    alone hides which side fails (an engine that never says "there" scores 0.5 on balanced data)."""
    truth, said = np.asarray(gt_exists, bool), np.asarray(pred_exists, bool)

    def recall(cls: bool) -> float | None:
        chosen = truth == cls
        return float((said[chosen] == cls).mean()) if chosen.any() else None

    return recall(True), recall(False)


def _same_shape(gt: np.ndarray, pred: np.ndarray) -> None:
    if gt.shape != pred.shape:
        raise ValueError(f"masks differ in size: ground truth {gt.shape}, prediction {pred.shape}")


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


@dataclass
class ScoreSheet:
    """Per-frame results of one direction, micro-averaged over every take, object and camera pair.

    Scored query frames go in by `add_absent` (no target ground truth) or `add_visible`; `add_visible_pair`
    takes the IoU of a frame whose object is visible in both views (the paper's protocol, reported ×100).
    """

    gt_exists: list[int] = field(default_factory=list)
    pred_exists: list[int] = field(default_factory=list)
    ious: list[float] = field(default_factory=list)
    contours: list[float] = field(default_factory=list)
    locations: list[float] = field(default_factory=list)
    visible_ious: list[float] = field(default_factory=list)

    def add_absent(self, confidence: float) -> None:
        """A scored frame whose target has no ground truth: it only counts towards visibility."""
        self.gt_exists.append(0)
        self.pred_exists.append(int(confidence > CONF_THRESH))

    def add_visible(self, gt: np.ndarray, pred: np.ndarray, confidence: float) -> None:
        """A scored frame with a target mask: `gt`, `pred` (H, W) bool at the evaluator's size."""
        self.gt_exists.append(1)
        self.pred_exists.append(int(confidence > CONF_THRESH))
        self.ious.append(iou(gt, pred))
        self.contours.append(boundary_f(gt, pred))
        self.locations.append(location_error(gt, pred))

    def add_visible_pair(self, value: float) -> None:
        self.visible_ious.append(value)

    def summary(self) -> dict[str, float | int | None]:
        """The four official metrics (plain means), the two recalls of the visibility call
        (`presence_recalls`), the visible-pairs mIoU (×100) and the frame counts; a metric with no frame
        to average is None."""
        visible_miou = _mean(self.visible_ious)
        there, absent = presence_recalls(self.gt_exists, self.pred_exists)
        return {
            "balanced_accuracy": balanced_accuracy(self.gt_exists, self.pred_exists)
            if self.gt_exists
            else None,
            "recall_there": there,
            "recall_absent": absent,
            "iou": _mean(self.ious),
            "location_error": _mean(self.locations),
            "contour_accuracy": _mean(self.contours),
            "visible_miou": None if visible_miou is None else 100 * visible_miou,
            "frames": len(self.gt_exists),
            "visible_frames": len(self.ious),
            "visible_pairs": len(self.visible_ious),
        }
