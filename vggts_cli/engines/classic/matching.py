"""Cross-view matching for the classic engine: where does the reference object sit in the target view?

The field's classical recipe, made to hold up on real frames:
- SIFT keypoints with RootSIFT descriptors (L1-normalised, square-rooted: Hellinger distance, which matches
  better than SIFT's L2), on the reference object's region resized so the object is a comfortable size,
  and on affine-tilted copies of it (ASIFT's tilt simulation), so a head camera's oblique view of an object
  still meets a fixed camera's frontal one;
- ratio-test matching with a mutual check (the target keypoint's own best match must land on the same
  reference point), which drops most matches on look-alikes and repeated texture;
- a MAGSAC++ (OpenCV USAC) homography or affine map, whichever the matches support, and every estimated map
  checked before it is used (finite, well-conditioned, maps the object to a plausible size and place).

Coordinates are the views' own full-resolution pixels (OpenCV pixel-centre convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from vggts_cli.geometry import Box
from vggts_cli.threads import single_threaded

# Tilt simulation: (tilt, number of in-plane angles over [0°, 180°)). ASIFT samples tilts in powers of √2;
# two levels cover views up to ~60° apart at a fraction of the cost of its full set.
TILTS: tuple[tuple[float, int], ...] = ((math.sqrt(2.0), 4), (2.0, 6))
OBJECT_PX = 128  # the object's long side when its features are computed (SIFT doubles it internally)
MAX_TARGET_PX = 1024  # a whole target frame is searched at most this large (long side)


@dataclass(frozen=True)
class Features:
    """Keypoints of one region of a view: `points` (N, 2) float32 in the view's pixels, `descriptors`
    (N, 128) float32 RootSIFT. Tilted copies contribute further rows (their points mapped back)."""

    points: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return len(self.points)


@dataclass(frozen=True)
class Match:
    """A checked map of the reference into the target: `transform` (3, 3) float64 (reference pixels →
    target pixels), its RANSAC `inliers`, the `matches` it was fitted to, and `coverage`, the share of the
    reference object's box spanned by the inliers' convex hull (a map pinned at one corner is weak)."""

    transform: np.ndarray
    inliers: int
    matches: int
    coverage: float


EMPTY = Features(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))


class Matcher:
    """RootSIFT (+ tilts) features, mutual ratio-test matching and checked MAGSAC++ fits.

    Args:
        max_features: keypoints kept per region and tilt at most (fewer for small regions).
        ratio: Lowe's ratio test threshold.
        min_inliers: inliers needed to accept a map.
    """

    def __init__(self, max_features: int = 3000, ratio: float = 0.8, min_inliers: int = 6) -> None:
        # Half SIFT's default contrast threshold: weakly textured objects (and real frames' soft focus) give
        # too few keypoints otherwise; the ratio and mutual checks keep the extra ones honest.
        self._sift = cv2.SIFT_create(nfeatures=max_features, contrastThreshold=0.02)
        self.max_features = max_features
        self.ratio = ratio
        self.min_inliers = min_inliers

    # ------------------------------------------------------------------ features

    def features(self, gray: np.ndarray, box: Box, scale: float, tilts: bool = False) -> Features:
        """Features of `gray` (H, W) uint8 within `box`, computed at `scale` × the view's resolution, plus
        those of tilted copies when `tilts`."""
        crop = np.ascontiguousarray(gray[box.y0 : box.y1, box.x0 : box.x1])
        if crop.size == 0:
            return EMPTY
        if scale != 1.0:
            size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            crop = cv2.resize(crop, size, interpolation=interpolation)
        # crop pixel -> view pixel (pixel centres)
        to_view = np.array(
            [[1 / scale, 0, box.x0 + 0.5 / scale - 0.5], [0, 1 / scale, box.y0 + 0.5 / scale - 0.5]]
        )
        parts = [self._detect(crop, to_view)]
        if tilts:
            for tilt, angles in TILTS:
                for k in range(angles):
                    image, inside, to_crop = simulate_tilt(crop, tilt, 180.0 * k / angles)
                    parts.append(self._detect(image, _compose(to_view, to_crop), inside))
        parts = [p for p in parts if len(p)]
        if not parts:
            return EMPTY
        return Features(
            np.concatenate([p.points for p in parts]), np.concatenate([p.descriptors for p in parts])
        )

    def _detect(self, image: np.ndarray, to_view: np.ndarray, inside: np.ndarray | None = None) -> Features:
        """Features of `image` (h, w) uint8 (where `inside` (h, w) uint8 is non-zero, if given), their
        points mapped by the 2x3 affine `to_view`."""
        # A keypoint per 40 pixels at most (SIFT keeps the strongest): descriptors are most of SIFT's cost,
        # and a small region's weakest keypoints rarely survive the ratio test anyway.
        self._sift.setNFeatures(int(np.clip(image.size / 40, 200, self.max_features)))
        keypoints, descriptors = self._sift.detectAndCompute(image, inside)
        if descriptors is None or not keypoints:
            return EMPTY
        points = np.asarray(cv2.KeyPoint_convert(keypoints), np.float64).reshape(-1, 2)
        points = points @ to_view[:, :2].T + to_view[:, 2]
        descriptors = descriptors / np.maximum(descriptors.sum(axis=1, keepdims=True), 1e-7)
        return Features(points.astype(np.float32), np.sqrt(descriptors).astype(np.float32))

    # ------------------------------------------------------------------ matching and fitting

    def correspondences(self, ref: Features, tgt: Features) -> tuple[np.ndarray, np.ndarray]:
        """Mutual ratio-test matches: reference points (M, 2) and target points (M, 2), float32."""
        if len(ref) < 2 or len(tgt) < 2:
            return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
        # RootSIFT descriptors have unit length: squared distances are 2 - 2 × dot products, so one matrix
        # product gives both directions' nearest neighbours.
        with single_threaded("blas"):
            similarity = ref.descriptors @ tgt.descriptors.T  # (R, T)
        two = np.argpartition(-similarity, 1, axis=1)[:, :2]  # the two nearest targets of each reference
        rows = np.arange(len(ref))
        first, second = similarity[rows, two[:, 0]], similarity[rows, two[:, 1]]
        swap = second > first
        best = np.where(swap, two[:, 1], two[:, 0])
        near, runner_up = np.maximum(first, second), np.minimum(first, second)
        distance = np.sqrt(np.maximum(2.0 - 2.0 * near, 0.0))
        ratio_ok = distance < self.ratio * np.sqrt(np.maximum(2.0 - 2.0 * runner_up, 0.0))
        # Mutual: the target point's own nearest reference is this point or one of its tilted copies (a copy
        # lies within a pixel or two of it).
        mate = ref.points[np.argmax(similarity, axis=0)[best]]
        mutual = np.abs(mate - ref.points).max(axis=1) <= 2.0
        keep = ratio_ok & mutual
        return ref.points[keep], tgt.points[best[keep]]

    def fit(
        self, src: np.ndarray, dst: np.ndarray, box: Box, target_shape: tuple[int, int], threshold: float
    ) -> Match | None:
        """The checked map of matched points `src` → `dst` (M, 2) of the reference object in `box`, into a
        target frame of (height, width) `target_shape`; None when no map is supported and plausible."""
        if len(src) < self.min_inliers:
            return None
        candidates = []
        affine, affine_mask = cv2.estimateAffine2D(
            src, dst, method=cv2.USAC_MAGSAC, ransacReprojThreshold=threshold, maxIters=2000
        )
        if affine is not None:
            candidates.append((np.vstack([affine, [0.0, 0.0, 1.0]]), affine_mask.ravel() > 0))
        if len(src) >= 8:
            homography, homography_mask = cv2.findHomography(
                src, dst, cv2.USAC_MAGSAC, threshold, maxIters=2000, confidence=0.995
            )
            if homography is not None:
                candidates.append((homography, homography_mask.ravel() > 0))
        # A homography's perspective terms are poorly pinned by one small object's keypoints and magnify
        # their noise along its outline: it is taken only when it explains clearly more than the affine map.
        best = None
        for transform, inliers in candidates:
            count = int(inliers.sum())
            if count < self.min_inliers or not plausible(transform, box, target_shape):
                continue
            if best is None or count > 1.1 * best[1] + 4:
                best = (transform, count, inliers)
        if best is None:
            return None
        transform, count, inliers = best
        return Match(transform / transform[2, 2], count, len(src), _coverage(src[inliers], box))


# ---------------------------------------------------------------------------------------------------------


def plausible(transform: np.ndarray, box: Box, target_shape: tuple[int, int]) -> bool:
    """Whether `transform` (3, 3) sends the reference object's `box` to a sane place in a target frame of
    (height, width) `target_shape`: finite; no corner through the horizon; convex and not mirrored; area
    scaled by at most 50x either way (a head camera against a far one); stretched at most 8:1 in any
    direction; perspective that changes the local scale by at most 6x across the object; and landing within
    the target frame (widened by half its size: the object may be partly outside)."""
    if not np.all(np.isfinite(transform)) or abs(transform[2, 2]) < 1e-12:
        return False
    transform = transform / transform[2, 2]
    corners = box.corners()
    projected = transform @ np.c_[corners, np.ones(4)].T
    if np.any(projected[2] <= 1e-6):
        return False
    quad = (projected[:2] / projected[2]).T
    edges = np.roll(quad, -1, axis=0) - quad
    following = np.roll(edges, -1, axis=0)
    turns = edges[:, 0] * following[:, 1] - edges[:, 1] * following[:, 0]
    if not np.all(turns > 0):
        return False  # mirrored (negative turns) or folded (mixed signs)
    area = max((box.x1 - box.x0) * (box.y1 - box.y0), 1)
    scale = _polygon_area(quad) / area
    if not 1 / 50 < scale < 50:
        return False
    local = [_jacobian(transform, point) for point in corners]
    determinants = [abs(np.linalg.det(j)) for j in local]
    if min(determinants) <= 0 or max(determinants) / min(determinants) > 6:
        return False
    singular = np.linalg.svd(local[0], compute_uv=False)
    if singular[1] <= 0 or singular[0] / singular[1] > 8:
        return False
    height, width = target_shape
    centre = quad.mean(axis=0)
    return -0.5 * width <= centre[0] <= 1.5 * width and -0.5 * height <= centre[1] <= 1.5 * height


def _jacobian(transform: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The 2x2 derivative of the homography `transform` at `point` (2,)."""
    x, y = point
    u, v, w = transform @ np.array([x, y, 1.0])
    top = transform[:2, :2] * w - np.outer([u, v], transform[2, :2])
    return top / (w * w)


def _polygon_area(points: np.ndarray) -> float:
    """Signed area of a polygon (N, 2) (positive for the image's clockwise-on-screen order)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _coverage(points: np.ndarray, box: Box) -> float:
    """The area of the convex hull of `points` (N, 2) over the area of `box`, at most 1."""
    if len(points) < 3:
        return 0.0
    hull = cv2.convexHull(points.astype(np.float32))
    area = max((box.x1 - box.x0) * (box.y1 - box.y0), 1)
    return float(min(1.0, cv2.contourArea(hull) / area))


def simulate_tilt(image: np.ndarray, tilt: float, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`image` (h, w) uint8 turned by `angle` degrees and squeezed by `tilt` along x (anti-aliased first),
    as ASIFT simulates an oblique view; with the mask (h', w') uint8 of its pixels that come from `image`
    and the 2x3 affine from its pixels back to `image`'s."""
    h, w = image.shape
    a = math.radians(angle)
    c, s = math.cos(a), math.sin(a)
    rotation = np.array([[c, -s], [s, c]])
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64) @ rotation.T
    x0, y0 = np.floor(corners.min(axis=0))
    x1, y1 = np.ceil(corners.max(axis=0))
    forward = np.c_[rotation, [-x0, -y0]]  # image -> turned canvas
    size = (int(x1 - x0), int(y1 - y0))
    turned = cv2.warpAffine(image, forward, size, flags=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(np.full_like(image, 255), forward, size, flags=cv2.INTER_NEAREST)
    blurred = cv2.GaussianBlur(turned, (0, 0), sigmaX=0.8 * math.sqrt(tilt * tilt - 1), sigmaY=0.01)
    squeezed_size = (max(1, round(size[0] / tilt)), size[1])
    squeezed = cv2.resize(blurred, squeezed_size, interpolation=cv2.INTER_NEAREST)
    # Keypoints on the canvas's edge would describe the edge, not the object: keep a few pixels clear of it.
    inside = cv2.erode(
        cv2.resize(inside, squeezed_size, interpolation=cv2.INTER_NEAREST), np.ones((7, 7), np.uint8)
    )
    forward = np.diag([1 / tilt, 1.0]) @ forward
    return squeezed, inside, cv2.invertAffineTransform(forward)


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine `outer` ∘ `inner`."""
    return np.c_[outer[:, :2] @ inner[:, :2], outer[:, :2] @ inner[:, 2] + outer[:, 2]]
