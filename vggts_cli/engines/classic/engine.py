"""The weight-free engine: feature matching across views, optical flow over time.

Each reference is carried into the target as a soft candidate mask with a confidence:
- the temporal reference (same camera, previous frame) by dense DIS optical flow: the object's pixels are
  pushed forward along its own (interior) motion, trusted where the flow is forward–backward consistent and
  the object looks the same where it lands;
- every other reference (the seed, another camera's frame at this instant) by an affine map or homography
  fitted by RANSAC to ORB/SIFT matches of the keypoints on the reference object (for another camera at the
  same instant, also its surroundings when the object alone has too few), trusted by its inliers and by the
  colours it brings into the target.
The candidates vote per pixel, weighted by confidence: the anchors (seed, cross) keep the temporal track from
drifting, and the temporal track gives the shape where no single transform fits. GrabCut then redraws the
outline on the object's colour edges, in a band around it. All the work happens at a small working size;
per-frame work (grayscale, keypoints) is cached because the same reference frames come back on every call.
Everything is deterministic: a resumed job reproduces the same masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from vggts_cli.cache import LruCache
from vggts_cli.engines.base import Engine, Prediction, Reference, View

Detector = Literal["sift", "orb"]


@dataclass
class WorkingFrame:
    """A view at working size: `gray` (h, w) uint8, `rgb` (h, w, 3) uint8; `fingerprint` identifies the
    pixels it was made from.

    `smooth` (h, w, 3) float32 and the keypoints (`points` (N, 2) float32, `descriptors` (N, D)) are filled in
    when first needed.
    """

    gray: np.ndarray
    rgb: np.ndarray
    fingerprint: bytes
    smooth: np.ndarray | None = None
    points: np.ndarray | None = None
    descriptors: np.ndarray | None = None


@dataclass(frozen=True)
class _Candidate:
    """A reference mask carried into the target: `prob` (h, w) float32 in [0, 1], its per-pixel vote `weight`
    (h, w) float32 and its overall `confidence` in [0, 1]."""

    prob: np.ndarray
    weight: np.ndarray
    confidence: float


class ClassicEngine(Engine):
    """Feature matching + RANSAC across views, DIS optical flow over time, optional GrabCut refinement.

    Args:
        work_size: long side of the internal processing size (frames are only ever shrunk to it).
        grabcut: refine the fused mask with GrabCut in a band around its outline. On by default: flow only
            carries the pixels it is given, so a part of the object lost once (or background taken in) would
            stay lost; the colour models put the outline back on the object's edges (~1.6x the time).
        detector: "orb" (fast) or "sift" (more robust to large viewpoint and scale changes, ~2x slower).
        max_features: keypoints kept per frame.
        min_inliers: RANSAC inliers needed to accept a homography.
        min_score: below this presence score the object is reported absent (empty mask).
        anchor_weight: vote of a seed/cross match relative to the temporal flow at equal confidence; above 1
            a confident anchor overrides the flow where they disagree (the flow's drift at the outline),
            while the flow alone decides wherever no match is found.
        cache_size: frames kept in the per-(camera, index) cache.
    """

    name = "classic"

    def __init__(
        self,
        work_size: int = 480,
        grabcut: bool = True,
        detector: Detector = "orb",
        max_features: int = 2000,
        min_inliers: int = 12,
        min_score: float = 0.1,
        anchor_weight: float = 2.0,
        cache_size: int = 16,
    ) -> None:
        if work_size < 64:
            raise ValueError(f"work_size must be at least 64, got {work_size}")
        self.work_size = work_size
        self.grabcut = grabcut
        self.min_inliers = min_inliers
        self.min_score = min_score
        self.anchor_weight = anchor_weight
        self.cache_size = cache_size
        if detector == "sift":
            self._detector = cv2.SIFT_create(nfeatures=max_features)
            self._matcher = cv2.BFMatcher(cv2.NORM_L2)
        elif detector == "orb":
            self._detector = cv2.ORB_create(nfeatures=max_features)
            self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        else:
            raise ValueError(f"unknown detector {detector!r} (expected 'sift' or 'orb')")
        # Variational refinement smooths the flow across the object's outline: most of the cost, no gain.
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._flow.setVariationalRefinementIterations(0)
        self._cache: LruCache[tuple[str, int], WorkingFrame] = LruCache(cache_size)
        # Tolerances in working-size pixels / colour levels.
        self._ransac_px = max(2.0, 0.0075 * work_size)
        self._fb_px = max(1.0, 0.004 * work_size)
        self._astray_px = max(1.0, 0.003 * work_size)
        self._photo_levels = 30.0
        self._band_px = max(3, round(0.015 * work_size))

    # ------------------------------------------------------------------ contract

    def segment(self, target: View, refs: Sequence[Reference]) -> Prediction:
        """Predict the object in `target` ((H, W, 3) uint8) from `refs`; the mask is (H, W) bool."""
        if not refs:
            raise ValueError("segment needs at least one reference")
        cv2.setRNGSeed(0)  # RANSAC and GrabCut's k-means draw from OpenCV's RNG: same inputs, same masks
        tgt = self._frame(target)
        candidates = []
        for ref in refs:
            if ref.mask.shape != ref.view.image.shape[:2]:
                raise ValueError(
                    f"reference mask {ref.mask.shape} does not match its frame {ref.view.image.shape[:2]}"
                )
            candidate = self._carry(ref, target, tgt)
            if candidate is not None:
                candidates.append(candidate)

        height, width = target.image.shape[:2]
        empty = Prediction(np.zeros((height, width), dtype=bool), 0.0)
        if not candidates:
            return empty
        # The mask stays soft until it is scaled to the target's size: thresholding at working size would
        # round the object's sub-pixel motion away on every frame and the track would lag behind it.
        prob = _vote(candidates)
        prob = _settle(prob, _clean(prob >= 0.5, self._band_px))
        if self.grabcut and (prob >= 0.5).any():
            prob = _settle(prob, self._refine(tgt.rgb, prob >= 0.5))
        score = _presence(candidates, prob >= 0.5)
        if score < self.min_score:
            return Prediction(empty.mask, score)
        full = cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)
        return Prediction(full >= 0.5, score)

    # ------------------------------------------------------------------ per-frame work

    def _frame(self, view: View) -> WorkingFrame:
        """The working-size frame of `view`, from a small LRU cache keyed by (camera, index)."""
        key = (view.camera, view.index)
        # A sparse sample of the pixels guards against a caller reusing a key for another image.
        fingerprint = str(view.image.shape).encode() + view.image[::16, ::16].tobytes()
        frame = self._cache.get(key)
        if frame is not None and frame.fingerprint == fingerprint:
            return frame
        height, width = view.image.shape[:2]
        scale = min(1.0, self.work_size / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = view.image if scale == 1.0 else cv2.resize(view.image, size, interpolation=cv2.INTER_AREA)
        rgb = np.ascontiguousarray(rgb)
        frame = WorkingFrame(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), rgb, fingerprint)
        self._cache.put(key, frame)
        return frame

    def _keypoints(self, frame: WorkingFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Keypoint positions (N, 2) float32 and descriptors (N, D) of the whole frame, computed once."""
        if frame.points is None:
            keypoints, descriptors = self._detector.detectAndCompute(frame.gray, None)
            frame.points = np.asarray(cv2.KeyPoint_convert(keypoints), np.float32).reshape(-1, 2)
            frame.descriptors = descriptors
        return frame.points, frame.descriptors

    @staticmethod
    def _smooth(frame: WorkingFrame) -> np.ndarray:
        """The lightly blurred colours (h, w, 3) float32 used for photometric checks (tolerates sub-pixel
        error; colour tells an object from a background of the same brightness)."""
        if frame.smooth is None:
            frame.smooth = cv2.GaussianBlur(frame.rgb, (0, 0), 1.0).astype(np.float32)
        return frame.smooth

    # ------------------------------------------------------------------ transfer

    def _carry(self, ref: Reference, target: View, tgt: WorkingFrame) -> _Candidate | None:
        """Carry one reference mask into the target; None when this reference gives no evidence."""
        src = self._frame(ref.view)
        h, w = src.gray.shape
        mask = cv2.resize(ref.mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        if mask.max() < 0.5:
            return None  # an empty reference (object absent there) says nothing about where it is here
        same_grid = ref.view.camera == target.camera and src.gray.shape == tgt.gray.shape
        if ref.kind == "temporal" and same_grid:
            return self._by_flow(src, mask, tgt)
        inside = (mask >= 0.5).astype(np.uint8)
        candidate = self._by_homography(src, mask, inside, tgt)
        if candidate is None and ref.kind == "cross":
            # Too few matches on the object alone (small or weakly textured): another camera at the same
            # instant also sees its surroundings as they are now, and the ground it stands on moves with it
            # between views. (Not the seed: taken earlier, the object may have moved over its background.)
            x, y, w, h = cv2.boundingRect(inside)
            around = cv2.dilate(inside, _disk(max(self._band_px, max(w, h) // 2)))
            candidate = self._by_homography(src, mask, around, tgt)
        return candidate

    def _by_flow(self, src: WorkingFrame, mask: np.ndarray, tgt: WorkingFrame) -> _Candidate | None:
        """Push the reference object `mask` (h, w) float32 into the target along dense optical flow.

        Within a patch of the object's outline the flow mixes the object's motion with the background's, and
        a backward warp gives the object's label to the background it uncovers: either way a track lags a
        little more behind its object on every frame. So the object's motion is taken from its interior pixels
        whose flow is forward–backward consistent and whose colour matches where they land, spread over the
        object (normalized convolution), and every object pixel that lands on its own colour is splatted
        forward along it; the flow votes background wherever none landed (the object left, or is occluded
        there). The flow is only computed in a window around the object, large enough for a frame's motion.
        """
        x, y, w, h = cv2.boundingRect((mask >= 0.5).astype(np.uint8))
        margin = max(round(0.1 * self.work_size), round(0.25 * max(w, h)))
        x0, y0 = max(0, x - margin), max(0, y - margin)
        x1, y1 = min(mask.shape[1], x + w + margin), min(mask.shape[0], y + h + margin)
        window = np.s_[y0:y1, x0:x1]
        obj = mask[window]
        src_gray = np.ascontiguousarray(src.gray[window])
        tgt_gray = np.ascontiguousarray(tgt.gray[window])
        src_colour = self._smooth(src)[window]
        tgt_colour = np.ascontiguousarray(self._smooth(tgt)[window])
        forward = self._flow.calc(src_gray, tgt_gray, None)  # (hw, ww, 2) reference → target
        backward = self._flow.calc(tgt_gray, src_gray, None)

        # Which reference pixels does the flow carry reliably?
        grid_y, grid_x = np.indices(obj.shape, dtype=np.float32)
        land_x, land_y = grid_x + forward[..., 0], grid_y + forward[..., 1]
        round_trip = forward + cv2.remap(backward, land_x, land_y, cv2.INTER_LINEAR)
        consistent = np.hypot(round_trip[..., 0], round_trip[..., 1]) < self._fb_px
        landed = cv2.remap(tgt_colour, land_x, land_y, cv2.INTER_LINEAR, borderValue=(-255.0,) * 3)
        reliable = consistent & (np.abs(landed - src_colour).max(axis=2) < self._photo_levels)
        inside = obj >= 0.5
        interior = cv2.erode(inside.astype(np.uint8), _disk(6)) > 0  # beyond the reach of an 8-px patch
        if interior.sum() < 20:
            interior = inside  # a thin object: its outline is all there is
        support = (interior & reliable).astype(np.float32)
        if not support.any():
            return None
        consistency = float(consistent[interior].mean())

        # The object's motion: reliable interior flow averaged over boxes a quarter of the object's size
        # (rigid enough to outvote the outline, loose enough for non-rigid motion), falling back to its mean
        # far from any reliable pixel.
        box = (max(w, h) // 8) * 2 + 1
        mean = (forward * support[..., None]).sum(axis=(0, 1)) / support.sum()
        spread = cv2.blur(forward * support[..., None], (box, box))
        motion = (spread + 1e-3 * mean) / (cv2.blur(support, (box, box)) + 1e-3)[..., None]

        ys, xs = np.nonzero(obj > 0.01)
        to_x = (xs + motion[ys, xs, 0]).astype(np.float32)
        to_y = (ys + motion[ys, xs, 1]).astype(np.float32)
        arrived = cv2.remap(
            tgt_colour, to_x[:, None], to_y[:, None], cv2.INTER_LINEAR, borderValue=(-255.0,) * 3
        )
        alike = np.abs(arrived[:, 0] - src_colour[ys, xs]).max(axis=1) < self._photo_levels
        # A pixel whose own flow is reliable but leaves the object's motion is background the mask took in
        # by mistake: it is dropped rather than dragged along (and spread) with the object.
        astray = reliable[ys, xs] & (np.hypot(*(forward[ys, xs] - motion[ys, xs]).T) > self._astray_px)
        weight = obj[ys, xs] * (alike & ~astray)
        mass = _splat(to_x, to_y, weight, obj.shape)

        # Chance agreement of unrelated textures is well above 0; map it to no confidence.
        agreement = float(weight.sum() / obj[ys, xs].sum())
        confidence = float(np.clip((agreement - 0.3) / 0.5, 0.0, 1.0)) * consistency
        if confidence == 0.0:
            return None
        prob, votes = np.zeros_like(mask), np.zeros_like(mask)
        prob[window] = np.minimum(mass, 1.0)
        votes[window] = confidence
        return _Candidate(prob, votes, confidence)

    def _by_homography(
        self, src: WorkingFrame, mask: np.ndarray, region: np.ndarray, tgt: WorkingFrame
    ) -> _Candidate | None:
        """Warp `mask` (h, w) float32 by a transform fitted by RANSAC to the matches of the keypoints within
        `region` (h, w) uint8, verified by the colours it brings into the target."""
        src_points, src_desc = self._keypoints(src)
        tgt_points, tgt_desc = self._keypoints(tgt)
        if src_desc is None or tgt_desc is None or len(tgt_points) < 2:
            return None
        xs = np.clip(src_points[:, 0].round().astype(int), 0, mask.shape[1] - 1)
        ys = np.clip(src_points[:, 1].round().astype(int), 0, mask.shape[0] - 1)
        chosen = region[ys, xs] > 0
        if chosen.sum() < self.min_inliers:
            return None
        matches = self._matcher.knnMatch(src_desc[chosen], tgt_desc, k=2)
        pairs = [(m.queryIdx, m.trainIdx) for m, n in matches if m.distance < 0.8 * n.distance]
        if len(pairs) < self.min_inliers:
            return None
        query, train = np.array(pairs).T
        transform, inliers = self._fit(src_points[chosen][query], tgt_points[train])
        if transform is None or inliers < self.min_inliers or not _plausible(transform, mask >= 0.5):
            return None
        h, w = tgt.gray.shape
        prob = cv2.warpPerspective(mask, transform, (w, h), flags=cv2.INTER_LINEAR)
        inside = prob >= 0.5
        if not inside.any():
            return None  # mapped outside the target frame
        # Matches on a weakly textured object can lock onto its background: then the object's colours land
        # on something else. Chance agreement of unrelated textures is well above 0; map it to no confidence.
        colours = cv2.warpPerspective(self._smooth(src), transform, (w, h), flags=cv2.INTER_LINEAR)
        alike = np.abs(colours[inside] - self._smooth(tgt)[inside]).max(axis=1) < self._photo_levels
        verified = float(np.clip((alike.mean() - 0.3) / 0.5, 0.0, 1.0))
        matched = min(1.0, inliers / (3 * self.min_inliers)) * min(1.0, inliers / len(pairs) / 0.5)
        confidence = matched * verified
        if confidence == 0.0:
            return None
        # A few dozen inliers prove the object is there, but it takes more to pin the transform down along
        # the whole outline: until then the flow's shape should win where the two disagree.
        precision = min(1.0, inliers / (6 * self.min_inliers))
        return _Candidate(prob, np.full_like(prob, self.anchor_weight * confidence * precision), confidence)

    def _fit(self, src_xy: np.ndarray, tgt_xy: np.ndarray) -> tuple[np.ndarray | None, int]:
        """The 3x3 map of matched points (N, 2) → (N, 2) and its inlier count, by RANSAC.

        A homography's two perspective terms are poorly pinned by the keypoints of one small object and
        magnify their noise along its outline, so it is taken only when it explains clearly more matches
        than an affine map (a strong perspective change between cameras).
        """
        affine, affine_mask = cv2.estimateAffine2D(
            src_xy, tgt_xy, method=cv2.RANSAC, ransacReprojThreshold=self._ransac_px, maxIters=2000
        )
        homography, homography_mask = cv2.findHomography(
            src_xy, tgt_xy, cv2.RANSAC, self._ransac_px, maxIters=2000, confidence=0.995
        )
        affine_inliers = 0 if affine is None else int(affine_mask.sum())
        homography_inliers = 0 if homography is None else int(homography_mask.sum())
        if homography_inliers > 1.1 * affine_inliers + 4:
            return homography, homography_inliers
        if affine is None:
            return None, 0
        return np.vstack([affine, [0.0, 0.0, 1.0]]), affine_inliers

    # ------------------------------------------------------------------ refinement

    def _refine(self, rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Re-decide the pixels of `mask` (h, w) bool within a band around its outline by GrabCut on `rgb`
        (h, w, 3) uint8; the rest stays sure foreground / background."""
        band = _disk(self._band_px)
        mask_u8 = mask.astype(np.uint8)
        inner = cv2.erode(mask_u8, band) > 0
        outer = cv2.dilate(mask_u8, band) > 0
        if not inner.any():
            return mask  # too thin to have a sure foreground
        labels = np.full(mask.shape, cv2.GC_BGD, dtype=np.uint8)
        labels[outer] = cv2.GC_PR_BGD
        labels[mask] = cv2.GC_PR_FGD
        labels[inner] = cv2.GC_FGD
        # Work on a crop with a margin of sure background so the colour models see both sides.
        x, y, w, h = cv2.boundingRect(outer.astype(np.uint8))
        margin = 3 * self._band_px
        x0, y0 = max(0, x - margin), max(0, y - margin)
        x1, y1 = min(mask.shape[1], x + w + margin), min(mask.shape[0], y + h + margin)
        crop = labels[y0:y1, x0:x1].copy()
        if not (crop == cv2.GC_BGD).any():
            return mask  # the object fills the frame: no background to model
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(np.ascontiguousarray(rgb[y0:y1, x0:x1]), crop, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
        refined = mask.copy()
        refined[y0:y1, x0:x1] = (crop == cv2.GC_FGD) | (crop == cv2.GC_PR_FGD)
        # GrabCut may leak into a background of the same colours: keep it only when it stays close.
        ratio = refined.sum() / mask.sum()
        return refined if 0.7 < ratio < 1.4 else mask


def _disk(radius: int) -> np.ndarray:
    """An elliptic structuring element of the given radius."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _splat(xs: np.ndarray, ys: np.ndarray, weights: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear forward splatting of `weights` (N,) at the points (`xs`, `ys`) (N,): (h, w) float32."""
    height, width = shape
    left, top = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
    fx, fy = xs - left, ys - top
    out = np.zeros(height * width)
    for dx, dy, share in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        cx, cy = left + dx, top + dy
        ok = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
        out += np.bincount(cy[ok] * width + cx[ok], share[ok] * weights[ok], height * width)
    return out.reshape(height, width).astype(np.float32)


def _plausible(homography: np.ndarray, mask: np.ndarray) -> bool:
    """Whether `homography` maps the bounding box of `mask` (h, w) bool to a sane quadrilateral: convex, not
    mirrored, area scaled by at most 25x either way (the scale gap between a head camera and a far camera)."""
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    box = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)
    projected = homography @ np.c_[box, np.ones(4)].T
    if np.any(projected[2] <= 1e-9):
        return False  # a corner goes through the horizon
    quad = (projected[:2] / projected[2]).T
    edges = np.roll(quad, -1, axis=0) - quad
    following = np.roll(edges, -1, axis=0)
    turns = edges[:, 0] * following[:, 1] - edges[:, 1] * following[:, 0]
    if not np.all(turns > 0):
        return False  # mirrored (negative turns) or folded (mixed signs)
    return 1 / 25 < _polygon_area(quad) / max(w * h, 1) < 25


def _polygon_area(points: np.ndarray) -> float:
    """Signed area of a polygon (N, 2) (positive for the image's clockwise-on-screen order)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _vote(candidates: Sequence[_Candidate]) -> np.ndarray:
    """Confidence-weighted soft vote of the candidate masks: (h, w) float32 in [0, 1], 0 where none votes."""
    numerator = sum(c.weight * c.prob for c in candidates)
    denominator = sum(c.weight for c in candidates)
    return np.where(denominator > 1e-3, numerator / np.maximum(denominator, 1e-3), 0.0).astype(np.float32)


def _settle(prob: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`prob` (h, w) float32 where it agrees with the decision `mask` (h, w) bool, the decision elsewhere."""
    return np.where(mask == (prob >= 0.5), prob, mask.astype(np.float32))


def _clean(mask: np.ndarray, radius: int) -> np.ndarray:
    """Close small gaps in `mask` (h, w) bool and keep only the components of notable size."""
    closed = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, _disk(radius))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    if count <= 1:
        return closed > 0
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= max(0.1 * areas.max(), radius * radius)) + 1
    return np.isin(labels, keep)


def _presence(candidates: Sequence[_Candidate], mask: np.ndarray) -> float:
    """Presence in [0, 1]: the chance that at least one candidate is right, lowered when the fused `mask`
    (h, w) bool is far (more than 2x) from the area the candidates expected."""
    evidence = 1.0 - float(np.prod([1.0 - c.confidence for c in candidates]))
    weights = np.array([c.confidence for c in candidates])
    expected = float(np.dot(weights, [c.prob.sum() for c in candidates]) / weights.sum())
    area = float(mask.sum())
    if area == 0.0 or expected == 0.0:
        return 0.0
    agreement = min(1.0, 2.0 * min(area / expected, expected / area))
    return evidence * agreement
