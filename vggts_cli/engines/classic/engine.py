"""The weight-free engine: feature matching across views, optical flow over time.

Each reference is carried into the target as a soft candidate mask with a confidence:
- the temporal reference (same camera, previous frame) by dense DIS optical flow: the object's pixels are
  pushed forward along its own (interior) motion, trusted where the flow is forward–backward consistent and
  the object looks the same where it lands;
- every other reference (the seed, another camera's frame at this instant) by an affine map or homography
  fitted by MAGSAC++ to mutual RootSIFT matches of the reference object, its tilted copies included
  (engines/classic/matching.py; for another camera at the same instant, also its surroundings when the
  object alone has too few), searched near the camera's previous mask when there is one, trusted by its
  inliers, their spread and how well the object's detail agrees in both views.
The candidates vote per pixel, weighted by confidence: the anchors (seed, cross) keep the temporal track from
drifting, and the temporal track gives the shape where no single transform fits. GrabCut then redraws the
outline on the object's colour edges, in a band around it, but for the pixels the flow carried surely. All
the work happens at a small working size; per-frame work (grayscale, keypoints) is cached because the
same reference frames come back on every call.
Everything is deterministic: a resumed job reproduces the same masks.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from vggts_cli.cache import LruCache
from vggts_cli.engines.base import Engine, Prediction, Reference, View
from vggts_cli.engines.classic.matching import MAX_TARGET_PX, OBJECT_PX, Features, Match, Matcher
from vggts_cli.geometry import Box, bbox


@dataclass
class WorkingFrame:
    """A view at working size: `gray` (h, w) uint8, `rgb` (h, w, 3) uint8, `scale` = working / full size;
    `full_gray` (H, W) uint8 at full size (for keypoints); `fingerprint` identifies the pixels it was made
    from; `side` the working size asked for (its long side, unless the view is smaller), which the
    tolerances in working pixels are fractions of.

    `smooth` (h, w, 3) float32 and `detail` (h, w) float32 are filled in when first needed, `regions`
    with the features of each region (keyed by what the region is) as they are computed.
    """

    gray: np.ndarray
    rgb: np.ndarray
    full_gray: np.ndarray
    scale: float
    fingerprint: bytes
    side: int
    smooth: np.ndarray | None = None
    detail: np.ndarray | None = None
    regions: dict = field(default_factory=dict)

    # Tolerances in working pixels, fractions of the working size.
    @property
    def fb_px(self) -> float:
        """How far a forward-backward flow round trip may miss and still count as consistent."""
        return max(1.0, 0.004 * self.side)

    @property
    def astray_px(self) -> float:
        """How far a pixel's own flow may leave the object's motion before it counts as background."""
        return max(1.0, 0.003 * self.side)

    @property
    def band_px(self) -> int:
        """The band around an outline that GrabCut re-decides (and the gaps closed)."""
        return max(3, round(0.015 * self.side))

    @property
    def flow_reach_px(self) -> int:
        """The least margin of the flow's window around the object: a frame's motion."""
        return round(0.1 * self.side)


@dataclass(frozen=True)
class _Candidate:
    """A reference mask carried into the target: `prob` (h, w) float32 in [0, 1], its per-pixel vote `weight`
    (h, w) float32, its overall `confidence` in [0, 1]; for a match its evidence: the checked map and how
    well the detail it brings agrees with the target's (`verified`, in [0, 1]); for the flow the pixels it
    carried surely (`carried`, (h, w) bool, None for a match), which GrabCut may not take away."""

    prob: np.ndarray
    weight: np.ndarray
    confidence: float
    match: Match | None = None
    verified: float = 0.0
    carried: np.ndarray | None = None

    @property
    def from_flow(self) -> bool:
        """Whether the camera's own flow carried this candidate (only matches have a map)."""
        return self.match is None


SURE = 0.5  # a match this confident ends the search for better ones
# A map is accepted from min_inliers on (a homography needs 4 points: 6 leave it checked by two more), but its
# confidence only becomes full at FULL_INLIERS: a small or distant object gives few keypoints, and its few
# inliers are evidence, weighed as such, rather than none.
FULL_INLIERS = 30
# `--detail fine`: a call works at the size where the object is at least this long (up to the frame's full
# resolution). Chosen on 17 DAVIS train clips (J 0.688 -> 0.711; 160 px: 0.704, 480 px: 0.704), checked on
# 13 others (0.652 -> 0.659).
FINE_OBJECT_PX = 320
SIDE_STEP = 64  # a grown working size is a multiple of this (or the frame's long side): frames are reused
CARRIED_COVER = 0.99  # a pixel the flow carried surely is covered in full (one splat sums to 1)
MIN_BACKGROUND_PX = 50  # reliable background pixels that give the background's motion in a flow window
GMM_SEEDS = 50  # pixels of each side GrabCut's colour models (5 components each) are seeded from, at least


class ClassicEngine(Engine):
    """Feature matching + MAGSAC++ across views, DIS optical flow over time, optional GrabCut refinement.

    Args:
        work_size: long side of the internal processing size (frames are only ever shrunk to it).
        object_px: when set, a call works at a larger size (up to the frame's full resolution) where the
            object's long side would be under this many working pixels: a small object keeps its detail
            (flow, outline) at the cost of time. None: always `work_size`.
        grabcut: refine the fused mask with GrabCut in a band around its outline. On by default: flow only
            carries the pixels it is given, so a part of the object lost once (or background taken in) would
            stay lost; the colour models put the outline back on the object's edges.
        max_features: keypoints kept per region.
        min_inliers: inliers needed to accept a map (its confidence is full at FULL_INLIERS).
        min_score: below this presence score the object is reported absent (empty mask), unless the
            camera's own flow still carries it (the mask is then kept, with its low score).
        anchor_weight: vote of a seed/cross match relative to the temporal flow at equal confidence; above 1
            a confident anchor overrides the flow where they disagree (the flow's drift at the outline),
            while the flow alone decides wherever no match is found.
        cache_size: frames kept in the per-(camera, index) cache.
    """

    name = "classic"

    def __init__(
        self,
        work_size: int = 480,
        object_px: int | None = None,
        grabcut: bool = True,
        max_features: int = 3000,
        min_inliers: int = 6,
        min_score: float = 0.1,
        anchor_weight: float = 2.0,
        cache_size: int = 16,
    ) -> None:
        if work_size < 64:
            raise ValueError(f"work_size must be at least 64, got {work_size}")
        if object_px is not None and object_px < 1:
            raise ValueError(f"object_px must be at least 1, got {object_px}")
        self.work_size = work_size
        self.object_px = object_px
        self.grabcut = grabcut
        self.min_score = min_score
        self.anchor_weight = anchor_weight
        self._matcher = Matcher(max_features, min_inliers=min_inliers)
        # Variational refinement smooths the flow across the object's outline: most of the cost, no gain.
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._flow.setVariationalRefinementIterations(0)
        self._cache: LruCache[tuple[str, int, int], WorkingFrame] = LruCache(cache_size)
        self._photo_levels = 30.0  # colour levels

    # ------------------------------------------------------------------ contract

    def segment(self, target: View, refs: Sequence[Reference]) -> Prediction:
        """Predict the object in `target` ((H, W, 3) uint8) from `refs`; the mask is (H, W) bool."""
        if not refs:
            raise ValueError("segment needs at least one reference")
        cv2.setRNGSeed(0)  # RANSAC and GrabCut's k-means draw from OpenCV's RNG: same inputs, same masks
        for ref in refs:
            if ref.mask.shape != ref.view.image.shape[:2]:
                raise ValueError(
                    f"reference mask {ref.mask.shape} does not match its frame {ref.view.image.shape[:2]}"
                )
        side = self._side(target, refs)
        tgt = self._frame(target, side)
        search = self._search_box(target, refs)
        # The temporal flow first: while it tracks surely, the anchors are matched by their plain features
        # only (they keep the track from drifting); the costly searches are for a lost or missing track.
        ordered = sorted(refs, key=lambda ref: ref.kind != "temporal")
        candidates: list[_Candidate] = []
        for ref in ordered:
            tracking = any(c.confidence >= SURE for c in candidates)
            candidate = self._carry(ref, target, tgt, search, thorough=not tracking)
            if candidate is not None:
                candidates.append(candidate)

        height, width = target.image.shape[:2]
        empty = Prediction(np.zeros((height, width), dtype=bool), 0.0)
        if not candidates:
            return empty
        # The mask stays soft until it is scaled to the target's size: thresholding at working size would
        # round the object's sub-pixel motion away on every frame and the track would lag behind it.
        prob = _vote(candidates)
        prob = _settle(prob, _clean(prob >= 0.5, tgt.band_px))
        if self.grabcut and (prob >= 0.5).any():
            carried = np.zeros(prob.shape, bool)
            for candidate in candidates:
                if candidate.carried is not None:
                    carried |= candidate.carried
            prob = _settle(prob, self._refine(tgt.rgb, prob >= 0.5, carried, tgt.band_px))
        score = _presence(candidates, prob >= 0.5)
        # Doubt alone does not end a track: a blurred, turning or half-hidden object scores low while the
        # camera's own flow still carries it, and an empty mask here would lose it for good (the next frame
        # has no temporal reference). The flow ends a track itself by carrying none of its pixels.
        tracked = any(c.from_flow for c in candidates)
        if score < self.min_score and not tracked:
            return Prediction(empty.mask, score)
        full = cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)
        return Prediction(full >= 0.5, score)

    # ------------------------------------------------------------------ per-frame work

    def _side(self, target: View, refs: Sequence[Reference]) -> int:
        """The working size of one call: `work_size`, or with `object_px` the size (a multiple of
        SIDE_STEP, at most the target's long side) at which the object would be `object_px` working pixels
        long, judged from the camera's previous mask when a reference gives it, else from the smallest
        reference object (its share of its own frame's long side)."""
        if self.object_px is None:
            return self.work_size
        own, smallest = None, None
        for ref in refs:
            box = bbox(ref.mask)
            if box is None:
                continue
            share = box.size / max(ref.mask.shape)
            if ref.kind == "temporal" and ref.view.camera == target.camera:
                own = share
            smallest = share if smallest is None else min(smallest, share)
        share = own if own is not None else smallest
        if share is None:
            return self.work_size
        wanted = SIDE_STEP * round(self.object_px / share / SIDE_STEP)
        return max(self.work_size, min(wanted, max(target.image.shape[:2])))

    def _frame(self, view: View, side: int) -> WorkingFrame:
        """The frame of `view` at working size `side`, from a small LRU cache keyed by (camera, index,
        side)."""
        key = (view.camera, view.index, side)
        # A sparse sample of the pixels guards against a caller reusing a key for another image.
        fingerprint = str(view.image.shape).encode() + view.image[::16, ::16].tobytes()
        frame = self._cache.get(key)
        if frame is not None and frame.fingerprint == fingerprint:
            return frame
        height, width = view.image.shape[:2]
        scale = min(1.0, side / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = view.image if scale == 1.0 else cv2.resize(view.image, size, interpolation=cv2.INTER_AREA)
        rgb = np.ascontiguousarray(rgb)
        full_gray = cv2.cvtColor(view.image, cv2.COLOR_RGB2GRAY)
        gray = full_gray if scale == 1.0 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        frame = WorkingFrame(gray, rgb, full_gray, size[0] / width, fingerprint, side)
        self._cache.put(key, frame)
        return frame

    def _region(self, frame: WorkingFrame, key: tuple, box: Box, scale: float, tilts: bool) -> Features:
        """The features of `box` of `frame` at `scale`, computed once per frame and `key`."""
        if key not in frame.regions:
            frame.regions[key] = self._matcher.features(frame.full_gray, box, scale, tilts)
        return frame.regions[key]

    @staticmethod
    def _search_box(target: View, refs: Sequence[Reference]) -> Box:
        """Where to look for the object in `target`: around the camera's previous mask when a reference gives
        it (half the object's size each way, or 5 % of the frame: a frame's motion), else the whole frame."""
        height, width = target.image.shape[:2]
        for ref in refs:
            if (
                ref.kind == "temporal"
                and ref.view.camera == target.camera
                and ref.mask.shape == (height, width)
            ):
                box = bbox(ref.mask)
                if box is not None:
                    margin = max(box.size // 2, round(0.05 * max(height, width)))
                    return box.grow(margin, height, width)
        return Box(0, 0, width, height)

    # ------------------------------------------------------------------ transfer

    def _carry(
        self, ref: Reference, target: View, tgt: WorkingFrame, search: Box, thorough: bool
    ) -> _Candidate | None:
        """Carry one reference mask into the target (looking for it within `search` when matching, with
        tilted copies and the object's surroundings too when `thorough`); None when this reference gives
        no evidence."""
        src = self._frame(ref.view, tgt.side)
        h, w = src.gray.shape
        mask = cv2.resize(ref.mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        if mask.max() < 0.5:
            return None  # an empty reference (object absent there) says nothing about where it is here
        same_grid = ref.view.camera == target.camera and src.gray.shape == tgt.gray.shape
        if ref.kind == "temporal" and same_grid:
            return self._by_flow(src, mask, tgt)
        box = bbox(ref.mask)
        if box is None:
            return None
        # Regions are only ever shrunk (to OBJECT_PX): SIFT's first octave already doubles its input, so a
        # small object's keypoints are found at its own resolution. Tilted copies cost ~10x the plain
        # features: computed once for the seed (cached for the job), for another reference only when its
        # plain features give no sure match.
        digest = hashlib.blake2b(np.packbits(ref.mask).tobytes(), digest_size=16).digest()
        scale = float(np.clip(OBJECT_PX / box.size, 0.25, 1.0))
        anchor = ref.kind in ("seed", "prompt")  # the user's masks: their tilted features kept for the job
        tries = [("object", box, scale, True)] if anchor else [("object", box, scale, False)]
        if not anchor and thorough:
            tries.append(("tilted", box, scale, True))
        if ref.kind == "cross" and thorough:
            # Too few matches on the object alone (small or weakly textured): another camera at the same
            # instant also sees its surroundings as they are now, and the ground it stands on moves with it
            # between views. (Not the seed: taken earlier, the object may have moved over its background.)
            for name, reach in (("around", 0.5), ("context", 2.0)):
                around = box.grow(round(reach * box.size), *ref.mask.shape)
                tries.append((name, around, float(np.clip(OBJECT_PX / box.size, 0.25, 1.0)), False))
        best = None
        for name, region, region_scale, tilts in tries:
            found = self._region(src, (name, digest), region, region_scale, tilts)
            candidate = self._by_match(src, mask, box, found, tgt, search)
            if candidate is not None and (best is None or candidate.confidence > best.confidence):
                best = candidate
            if best is not None and best.confidence >= SURE:
                break
        return best

    def _target_features(self, tgt: WorkingFrame, search: Box) -> Features:
        """Features of the target within `search`: the whole frame at most MAX_TARGET_PX large, or a box
        around the previous mask (twice the object's size) scaled so the object is about OBJECT_PX."""
        height, width = tgt.full_gray.shape
        if (search.width, search.height) == (width, height):
            scale = min(1.0, MAX_TARGET_PX / max(width, height))
        else:
            scale = float(np.clip(OBJECT_PX / max(search.size // 2, 1), 0.25, 1.0))
            scale = min(scale, MAX_TARGET_PX / search.size)
        return self._region(tgt, ("search", search), search, scale, tilts=False)

    def _by_match(
        self,
        src: WorkingFrame,
        mask: np.ndarray,
        box: Box,
        found: Features,
        tgt: WorkingFrame,
        search: Box,
    ) -> _Candidate | None:
        """Warp the working-size `mask` (h, w) float32 by the map fitted to the matches of the reference's
        features `found` (its object in `box`) in the target's `search` box, verified by the colours it
        brings into the target."""
        height, width = tgt.full_gray.shape
        wanted = self._target_features(tgt, search)
        src_xy, tgt_xy = self._matcher.correspondences(found, wanted)
        threshold = max(1.5, 0.004 * max(height, width))
        match = self._matcher.fit(src_xy, tgt_xy, box, (height, width), threshold)
        if match is None:
            return None
        transform = _scaling(tgt.scale) @ match.transform @ np.linalg.inv(_scaling(src.scale))
        h, w = tgt.gray.shape
        prob = cv2.warpPerspective(mask, transform, (w, h), flags=cv2.INTER_LINEAR)
        inside = prob >= 0.5
        if not inside.any():
            return None  # mapped outside the target frame
        # Matches on a weakly textured object can lock onto its background: then the object's picture lands
        # on something else. Another camera sees it in other light, through another tone curve, so the
        # check is the normalized correlation of the shading, not equal colours.
        shading = cv2.warpPerspective(_shading(src), transform, (w, h), flags=cv2.INTER_LINEAR)
        verified = _correlation(shading[inside], _shading(tgt)[inside])
        confidence = _match_confidence(match) * verified
        if confidence == 0.0:
            return None
        # A few dozen inliers prove the object is there, but it takes more to pin the transform down along
        # the whole outline: until then the flow's shape should win where the two disagree.
        precision = min(1.0, match.inliers / (2 * FULL_INLIERS))
        weight = np.full_like(prob, self.anchor_weight * confidence * precision)
        return _Candidate(prob, weight, confidence, match, verified)

    def _by_flow(self, src: WorkingFrame, mask: np.ndarray, tgt: WorkingFrame) -> _Candidate | None:
        """Push the reference object `mask` (h, w) float32 into the target along dense optical flow.

        Within a patch of the object's outline the flow mixes the object's motion with the background's, and
        a backward warp gives the object's label to the background it uncovers: either way a track lags a
        little more behind its object on every frame. So the object's motion is taken from its interior pixels
        whose flow is forward–backward consistent and whose colour matches where they land, spread over the
        object (normalized convolution), and every object pixel that lands on its own colour is splatted
        forward along it — or along its own flow, where that is reliable and follows neither the object's
        motion nor the background's (a limb swinging on its own); the flow votes background wherever none
        landed (the object left, or is occluded there). The flow is only computed in a window around the
        object, large enough for a frame's motion.
        """
        around = bbox(mask >= 0.5)
        assert around is not None  # the caller passes a non-empty reference
        window = around.grow(max(tgt.flow_reach_px, round(0.25 * around.size)), *mask.shape).slices
        obj = mask[window]
        src_gray = np.ascontiguousarray(src.gray[window])
        tgt_gray = np.ascontiguousarray(tgt.gray[window])
        src_colour = _smooth_colours(src)[window]
        tgt_colour = np.ascontiguousarray(_smooth_colours(tgt)[window])
        forward = self._flow.calc(src_gray, tgt_gray, None)  # (hw, ww, 2) reference → target
        backward = self._flow.calc(tgt_gray, src_gray, None)

        # Which reference pixels does the flow carry reliably?
        grid_y, grid_x = np.indices(obj.shape, dtype=np.float32)
        land_x, land_y = grid_x + forward[..., 0], grid_y + forward[..., 1]
        round_trip = forward + cv2.remap(backward, land_x, land_y, cv2.INTER_LINEAR)
        consistent = np.hypot(round_trip[..., 0], round_trip[..., 1]) < tgt.fb_px
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

        motion = _object_motion(forward, support, around.size)

        ys, xs = np.nonzero(obj > 0.01)
        # Sampled over the whole window, not as one (N, 1) map: remap takes maps under 32767 rows.
        moved_x, moved_y = grid_x + motion[..., 0], grid_y + motion[..., 1]
        arrived = cv2.remap(tgt_colour, moved_x, moved_y, cv2.INTER_LINEAR, borderValue=(-255.0,) * 3)
        own = forward[ys, xs]
        alike = np.abs(arrived[ys, xs] - src_colour[ys, xs]).max(axis=1) < self._photo_levels
        # A pixel whose own flow is reliable but leaves the object's motion is either background the mask
        # took in by mistake (it moves as the background does: dropped rather than dragged along with the
        # object) or a part with a motion of its own, a swinging leg or arm (carried along its own flow,
        # which its colour already confirmed). Without background to tell them apart, the former.
        off_object = np.hypot(*(own - motion[ys, xs]).T)
        leaves = reliable[ys, xs] & (off_object > tgt.astray_px)
        backdrop = _background_motion(forward, reliable, inside, tgt.band_px)
        if backdrop is None:
            astray, apart = leaves, np.zeros_like(leaves)
        else:
            closer = np.hypot(*(own - backdrop).T) < off_object
            astray, apart = leaves & closer, leaves & ~closer
        to_x = np.where(apart, xs + own[:, 0], moved_x[ys, xs])
        to_y = np.where(apart, ys + own[:, 1], moved_y[ys, xs])
        weight = obj[ys, xs] * ((alike | apart) & ~astray)
        mass = _splat(to_x, to_y, weight, obj.shape)
        # What the flow carried surely: pixels covered in full by reliable object pixels that move unlike the
        # background (the motion itself says "object"). GrabCut keeps them: judged by colour alone in its
        # band, a thin part (a leg, an arm) whose colours the background also has was cut off a little more
        # on every frame, and a track shrank to the object's core. A background patch the mask took in gives
        # no such evidence where it moves as the background does, so it stays GrabCut's to decide.
        carried = np.zeros(mask.shape, bool)
        if backdrop is not None:
            moves = np.hypot(to_x - xs - backdrop[0], to_y - ys - backdrop[1]) > tgt.astray_px
            surely = _splat(to_x, to_y, weight * (reliable[ys, xs] & moves), obj.shape)
            carried[window] = surely >= CARRIED_COVER

        # Chance agreement of unrelated textures is well above 0; map it to no confidence.
        agreement = float(weight.sum() / obj[ys, xs].sum())
        confidence = float(np.clip((agreement - 0.3) / 0.5, 0.0, 1.0)) * consistency
        if confidence == 0.0:
            return None
        prob, votes = np.zeros_like(mask), np.zeros_like(mask)
        prob[window] = np.minimum(mass, 1.0)
        votes[window] = confidence
        return _Candidate(prob, votes, confidence, carried=carried)

    # ------------------------------------------------------------------ refinement

    def _refine(self, rgb: np.ndarray, mask: np.ndarray, carried: np.ndarray, band_px: int) -> np.ndarray:
        """Re-decide the pixels of `mask` (h, w) bool within a `band_px` band around its outline by GrabCut
        on `rgb` (h, w, 3) uint8; the rest, and the pixels of `mask` the flow `carried` (h, w) bool surely,
        stay sure foreground / background."""
        band = _disk(band_px)
        mask_u8 = mask.astype(np.uint8)
        inner = cv2.erode(mask_u8, band) > 0
        outer = cv2.dilate(mask_u8, band) > 0
        if not inner.any():
            return mask  # too thin to have a sure foreground
        labels = np.full(mask.shape, cv2.GC_BGD, dtype=np.uint8)
        labels[outer] = cv2.GC_PR_BGD
        labels[mask] = cv2.GC_PR_FGD
        labels[inner | (carried & mask)] = cv2.GC_FGD
        # Work on a crop with a margin of sure background so the colour models see both sides.
        x, y, w, h = cv2.boundingRect(outer.astype(np.uint8))
        margin = 3 * band_px
        x0, y0 = max(0, x - margin), max(0, y - margin)
        x1, y1 = min(mask.shape[1], x + w + margin), min(mask.shape[0], y + h + margin)
        crop = labels[y0:y1, x0:x1].copy()
        if not (crop == cv2.GC_BGD).any():
            return mask  # the object fills the frame: no background to model
        image = np.ascontiguousarray(rgb[y0:y1, x0:x1])
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        # Most of GrabCut's cost is the k-means that seeds its colour models, over every pixel of the crop:
        # seeded from every other pixel, the models (learned again from all of them in the one iteration)
        # come out as good, and one iteration from our labels does as well as two (17 DAVIS train clips:
        # J 0.621 -> 0.622, 0.683 -> 0.682 with --detail fine; GrabCut's time halved).
        seeds = np.ascontiguousarray(crop[::2, ::2])
        on_object = _said_object(seeds)
        mode = cv2.GC_INIT_WITH_MASK
        if min(np.count_nonzero(on_object), np.count_nonzero(~on_object)) >= GMM_SEEDS:
            cv2.grabCut(np.ascontiguousarray(image[::2, ::2]), seeds, None, bgd, fgd, 0, mode)
            mode = cv2.GC_EVAL  # the models as seeded, re-learned from the crop's labels first
        cv2.grabCut(image, crop, None, bgd, fgd, 1, mode)
        refined = mask.copy()
        refined[y0:y1, x0:x1] = _said_object(crop)
        # GrabCut may leak into a background of the same colours: keep it only when it stays close.
        ratio = refined.sum() / mask.sum()
        return refined if 0.7 < ratio < 1.4 else mask


def _said_object(labels: np.ndarray) -> np.ndarray:
    """The pixels GrabCut `labels` (h, w) uint8 put on the object, surely or probably: (h, w) bool."""
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def _disk(radius: int) -> np.ndarray:
    """An elliptic structuring element of the given radius."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _object_motion(flow: np.ndarray, support: np.ndarray, size: int) -> np.ndarray:
    """The object's motion (h, w, 2) float32 from its reliable `flow` (h, w, 2) where `support` (h, w)
    float32 is 1: averaged over boxes a quarter of the object's `size` (rigid enough to outvote the
    outline, loose enough for non-rigid motion), falling back to its mean far from any reliable pixel."""
    box = (size // 8) * 2 + 1
    mean = (flow * support[..., None]).sum(axis=(0, 1)) / support.sum()
    spread = cv2.blur(flow * support[..., None], (box, box))
    return (spread + 1e-3 * mean) / (cv2.blur(support, (box, box)) + 1e-3)[..., None]


def _background_motion(
    flow: np.ndarray, reliable: np.ndarray, inside: np.ndarray, band_px: int
) -> np.ndarray | None:
    """The background's motion (2,) in a flow window: the median `flow` (h, w, 2) of the `reliable` (h, w)
    bool pixels farther than `band_px` from the object `inside` (h, w) bool; None with under
    MIN_BACKGROUND_PX of them (the object fills its window)."""
    outside = cv2.dilate(inside.astype(np.uint8), _disk(band_px)) == 0
    samples = flow[outside & reliable]
    return np.median(samples, axis=0) if len(samples) >= MIN_BACKGROUND_PX else None


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


def _smooth_colours(frame: WorkingFrame) -> np.ndarray:
    """The lightly blurred colours (h, w, 3) float32 used for photometric checks (tolerates sub-pixel
    error; colour tells an object from a background of the same brightness), computed once per frame."""
    if frame.smooth is None:
        frame.smooth = cv2.GaussianBlur(frame.rgb, (0, 0), 1.0).astype(np.float32)
    return frame.smooth


def _shading(frame: WorkingFrame) -> np.ndarray:
    """The detail that matched views are compared by: (h, w) float32 grey levels, lightly blurred, less
    their local mean (light fields, shadows and vignetting vary slowly; an object's own texture does not)."""
    if frame.detail is None:
        grey = _smooth_colours(frame).mean(axis=2)
        frame.detail = grey - cv2.GaussianBlur(grey, (0, 0), 4.0)
    return frame.detail


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """How well the detail `a` and `b` (N,) agree up to gain, mapped to [0, 1]: unrelated textures
    correlate near 0, so 0.2 and below is no agreement, 0.7 and above full agreement. A region without
    detail on either side (a flat object) gives no evidence either way: 0.5."""
    sa, sb = float(a.std()), float(b.std())
    if min(sa, sb) < 1.0:
        return 0.5
    r = float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))
    return float(np.clip((r - 0.2) / 0.5, 0.0, 1.0))


def _scaling(scale: float) -> np.ndarray:
    """Full-size pixels -> pixels of a copy resized by `scale` (pixel-centre convention): (3, 3)."""
    offset = 0.5 * scale - 0.5
    return np.array([[scale, 0.0, offset], [0.0, scale, offset], [0.0, 0.0, 1.0]])


def _match_confidence(match: Match) -> float:
    """How sure a checked map is, from its inliers (count and share of the matches) and their spread."""
    count = min(1.0, match.inliers / FULL_INLIERS)
    share = min(1.0, match.inliers / match.matches / 0.5)
    spread = min(1.0, match.coverage / 0.15)
    return count * share * spread


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


# Presence of a match, sigmoid(PRESENCE_BIAS + PRESENCE_WEIGHTS · presence_features(...)[:5]): a logistic
# fit on rendered training pairs (plain and widened looks; targets with and without the object), made by
# `python benchmarks/calibrate_classic_presence.py`. Calibrated so that a score >= 0.5 means "there".
PRESENCE_WEIGHTS = (0.777, -0.185, 1.380, 1.140, 0.744)
PRESENCE_BIAS = 1.570


def presence_features(candidates: Sequence[_Candidate], mask: np.ndarray) -> tuple[float, ...]:
    """What the presence score is computed from: the best match's confidence, log inlier count, inlier
    coverage and detail agreement (zeros without a match), the fused `mask`'s (h, w) bool agreement with
    the area the candidates expected (1 within 2x of it, falling to 0 as it shrinks or grows further),
    and the flow's confidence."""
    matches = [c for c in candidates if not c.from_flow]
    flows = [c.confidence for c in candidates if c.from_flow]
    weights = np.array([c.confidence for c in candidates])
    expected = float(np.dot(weights, [c.prob.sum() for c in candidates]) / max(weights.sum(), 1e-9))
    area = float(mask.sum())
    agreement = (
        0.0 if area == 0.0 or expected == 0.0 else min(1.0, 2.0 * min(area / expected, expected / area))
    )
    flow = max(flows, default=0.0)
    if not matches:
        return (0.0, 0.0, 0.0, 0.0, agreement, flow)
    best = max(matches, key=lambda c: c.confidence)
    assert best.match is not None
    return (
        best.confidence,
        math.log1p(best.match.inliers),
        best.match.coverage,
        best.verified,
        agreement,
        flow,
    )


def _presence(candidates: Sequence[_Candidate], mask: np.ndarray) -> float:
    """Presence in [0, 1]: the chance that the object is there, from the best match (calibrated, see
    PRESENCE_WEIGHTS) or the flow that carried it from the camera's previous frame, whichever is surer;
    each scaled by how well the fused `mask` (h, w) bool agrees with the area they expected."""
    features = presence_features(candidates, mask)
    agreement, flow = features[4:]
    matched = match_presence(features[:5]) if features[0] > 0.0 else 0.0
    return max(matched, flow * agreement)


def match_presence(features: Sequence[float]) -> float:
    """The calibrated chance that the object is there, from a match's first five `presence_features`."""
    logit = PRESENCE_BIAS + float(np.dot(PRESENCE_WEIGHTS, features))
    return 1.0 / (1.0 + math.exp(-logit))
