"""The plain cross-view baseline the classic engine is measured against, and the comparison.

The baseline is the textbook recipe: SIFT keypoints of the reference object's region, also computed on
tilt-simulated copies of it (ASIFT-style), Lowe's ratio test, a RANSAC homography, the mask warped by it and
refined by GrabCut; "present" when the homography has enough inliers. It is kept here, outside the package,
only to keep the classic engine honest: both run on the same scenes in the same run.

    python benchmarks/sift_baseline.py --pairs 40 --wide --json baseline.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vggts_cli.engines.base import Engine, Prediction, Reference, View  # noqa: E402
from vggts_cli.engines.classic.matching import TILTS, simulate_tilt  # noqa: E402


class SiftBaseline(Engine):
    """SIFT (+ tilts) on the reference object, ratio test, RANSAC homography, GrabCut."""

    name = "baseline"

    def __init__(self, min_inliers: int = 12) -> None:
        self.sift = cv2.SIFT_create()
        self.matcher = cv2.BFMatcher(cv2.NORM_L2)
        self.min_inliers = min_inliers

    def segment(self, target: View, refs: Sequence[Reference]) -> Prediction:
        cv2.setRNGSeed(0)
        ref = refs[0]
        empty = Prediction(np.zeros(target.image.shape[:2], bool), 0.0)
        src = cv2.cvtColor(ref.view.image, cv2.COLOR_RGB2GRAY)
        tgt = cv2.cvtColor(target.image, cv2.COLOR_RGB2GRAY)
        x, y, w, h = cv2.boundingRect(ref.mask.astype(np.uint8))
        if w == 0:
            return empty
        crop = np.ascontiguousarray(src[y : y + h, x : x + w])
        points, descriptors = [], []
        views = [(crop, None, np.array([[1.0, 0, 0], [0, 1.0, 0]]))]
        views += [simulate_tilt(crop, t, 180.0 * k / n) for t, n in TILTS for k in range(n)]
        for image, inside, back in views:
            keypoints, desc = self.sift.detectAndCompute(image, inside)
            if desc is None:
                continue
            xy = np.asarray(cv2.KeyPoint_convert(keypoints), np.float64).reshape(-1, 2)
            points.append(xy @ back[:, :2].T + back[:, 2] + [x, y])
            descriptors.append(desc)
        target_keypoints, target_desc = self.sift.detectAndCompute(tgt, None)
        if not descriptors or target_desc is None or len(target_keypoints) < 2:
            return empty
        points, descriptors = np.concatenate(points), np.concatenate(descriptors)
        target_points = np.asarray(cv2.KeyPoint_convert(target_keypoints), np.float64).reshape(-1, 2)
        pairs = [
            (m.queryIdx, m.trainIdx)
            for m, n in self.matcher.knnMatch(descriptors, target_desc, k=2)
            if m.distance < 0.75 * n.distance
        ]
        if len(pairs) < self.min_inliers:
            return empty
        query, train = np.array(pairs).T
        homography, inliers = cv2.findHomography(points[query], target_points[train], cv2.RANSAC, 5.0)
        if homography is None or inliers.sum() < self.min_inliers:
            return empty
        height, width = tgt.shape
        mask = cv2.warpPerspective(ref.mask.astype(np.uint8), homography, (width, height)) > 0
        if not mask.any():
            return empty
        return Prediction(_grabcut(target.image, mask), min(1.0, inliers.sum() / (3 * self.min_inliers)))


def _grabcut(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """GrabCut initialised with `mask` as probable foreground in a band around it."""
    band = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11))
    labels = np.full(mask.shape, cv2.GC_BGD, np.uint8)
    labels[cv2.dilate(mask.astype(np.uint8), band, iterations=2) > 0] = cv2.GC_PR_BGD
    labels[mask] = cv2.GC_PR_FGD
    labels[cv2.erode(mask.astype(np.uint8), band, iterations=2) > 0] = cv2.GC_FGD
    if not (labels == cv2.GC_BGD).any():
        return mask
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    try:
        cv2.grabCut(np.ascontiguousarray(image), labels, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return mask
    refined = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    return refined if refined.any() else mask


def main() -> None:
    from vggts_cli.engines.classic.engine import ClassicEngine
    from vggts_cli.eval.rendered import evaluate_rendered
    from vggts_cli.eval.report import rendered_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--tiers", default="easy,medium,hard")
    parser.add_argument("--wide", action="store_true", help="the widened validation (eval rendered --wide)")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args()
    engines = {"classic": ClassicEngine(), "baseline": SiftBaseline()}
    result = evaluate_rendered(engines, args.tiers.split(","), args.pairs, wide=args.wide)
    from rich.console import Console

    Console().print(rendered_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
