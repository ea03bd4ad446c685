"""Training samples: [source, target] model inputs, both masks, and the source points with their true
target positions, from three kinds of pair:

- "adaptive" / "non_adaptive": one photo, two views (`augment`), a pseudo-object (`regions`) as the
  object; the target mask is the object warped into the target view;
- "rig": an ego/exo frame pair of a scene rendered by `synth.rig`, in either direction;
- "focus": the same, the target seen through a (jittered) focus crop, as the learned engine sees small
  objects;
- "scene": two frames of the moving-object recordings of `synth.scene` (the bundled example's generator,
  other seeds): a camera and itself a moment later, or the other camera at the same instant — the
  temporal and cross references of `vggts propagate`.

Target points are exact: the source points mapped by the known homography between the two inputs. For the
non-adaptive kind the tracker is not expected to follow, so the prompt is synthesised from them: the true
points plus noise, clipped to the image.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vggts_cli.augment import (
    PROMPT_NOISE,
    adaptive_view,
    centred,
    jitter_content,
    non_adaptive_view,
    render,
    source_window,
    target_points,
)
from vggts_cli.engines.learned.engine import to_tensor
from vggts_cli.engines.learned.focus import KEEP_MAX, focus_crop
from vggts_cli.errors import UsageError, VggtsError
from vggts_cli.geometry import Box, Framing, Letterbox, SquareCrop, bbox
from vggts_cli.synth.rig import TIERS, render_rig_pair, training_seed
from vggts_cli.synth.scene import CameraPath, Scene, ego_exo_cameras
from vggts_cli.train.photos import load_photo, photo_names
from vggts_cli.train.regions import choose_region, region_mask

KINDS = ("adaptive", "non_adaptive", "rig", "scene", "focus")
DIRECTIONS = ("ego-exo", "exo-ego")
EGO_HW, EXO_HW = (480, 640), (540, 960)  # the frame sizes of the rig's cameras (as in the example rig)
SOURCE_TRIES = 50  # (photo, window) draws before giving up on finding a pseudo-object
SOURCE_VIEW_TRIES = 20  # rendered pairs drawn before giving up on one whose source view shows the object


class NoObjectInSource(ValueError):
    """The source view of a rendered pair does not show the object (the rig renders such views)."""


@dataclass
class TrainSample:
    """One [source, target] pair at model-input size S with N points (all coordinates (x, y) in input px)."""

    images: np.ndarray  # (2, S, S, 3) uint8: [source, target] square model inputs
    src_mask: np.ndarray  # (S, S) bool, non-empty
    tgt_mask: np.ndarray  # (S, S) bool, may be empty (the object left the view)
    src_points: np.ndarray  # (N, 2) float32: kmeans_points(src_mask, N)
    tgt_points: np.ndarray  # (N, 2) float32: true positions of src_points in the target (may lie outside)
    points_valid: np.ndarray  # (N,) bool: the true target point is inside the target's image content
    synth_points: bool  # prompt the head with prompt_points instead of the tracker's points
    prompt_points: np.ndarray  # (N, 2) float32: tgt_points (+ noise when synth_points) clipped to the image
    kind: str  # one of KINDS


def single_image_sample(rng: np.random.Generator, size: int, n_points: int, kind: str) -> TrainSample:
    """A pair of two views of one photo with a pseudo-object: `kind` "adaptive" (the tracker's points
    prompt the head) or "non_adaptive" (synthesised points do)."""
    if kind not in ("adaptive", "non_adaptive"):
        raise ValueError(f"single-image kind {kind!r} is not adaptive or non_adaptive")
    names = photo_names()
    for _ in range(SOURCE_TRIES):
        photo = load_photo(names[int(rng.integers(len(names)))])
        src_view, window = source_window(photo.hw, size, rng)
        region = choose_region(photo.segmentation, window, rng)
        if region is None:
            continue
        object_mask, object_box = region_mask(photo.segmentation, region)
        src_image, src_mask = render(photo.levels, object_mask, src_view, fill=(0, 0, 0))
        if src_mask.any():
            break
    else:
        raise VggtsError("no pseudo-object found in the training photos")

    if kind == "adaptive":
        tgt_view = adaptive_view(window, size, rng)
    else:
        tgt_view = non_adaptive_view(window, object_box, size, rng)
    fill = tuple(int(c) for c in rng.integers(0, 256, 3))  # outside the photo: a flat random colour
    tgt_image, tgt_mask = render(photo.levels, object_mask, tgt_view, fill)
    images = np.stack([jitter_content(src_image, src_view, rng), jitter_content(tgt_image, tgt_view, rng)])

    synth = kind == "non_adaptive"
    to_target = centred(tgt_view.to_input() @ np.linalg.inv(src_view.to_input()))
    noise = (rng, PROMPT_NOISE * size) if synth else None
    src, tgt, valid, prompt = target_points(src_mask, to_target, tgt_view.content_hw, n_points, noise)
    return TrainSample(images, src_mask, tgt_mask, src, tgt, valid, synth, prompt, kind)


def rig_sample(
    index: int,
    size: int,
    n_points: int,
    direction: str,
    tier: str,
    focus: np.random.Generator | None = None,
) -> TrainSample:
    """Rendered rig pair `index` of difficulty `tier` ("easy" | "medium" | "hard"), "ego-exo" (ego frame
    is the source) or "exo-ego", for a 640×480 ego and a 960×540 exo frame. The tracker's points prompt the
    head. Raises NoObjectInSource when the source view does not show the object.

    Views are rendered directly at their letterbox content size; with `focus` (the generator of its
    jitter), the target is rendered at its frame size and seen through the focus crop the learned engine
    would use for its object (engines/learned/focus.py), placed and sized as a tracked mask's box may be off.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    ego_content, exo_content = Letterbox.fit(EGO_HW, size).content_hw, Letterbox.fit(EXO_HW, size).content_hw
    ego_first = direction == "ego-exo"
    ego_hw = EGO_HW if focus is not None and not ego_first else ego_content
    exo_hw = EXO_HW if focus is not None and ego_first else exo_content
    pair = render_rig_pair(training_seed(index), tier, ego_hw, exo_hw)
    to_exo = pair.ego_to_exo
    views = ((pair.ego, pair.ego_mask), (pair.exo, pair.exo_mask))
    (src_image, src_mask), (tgt_frame, tgt_frame_mask) = views if ego_first else views[::-1]
    to_target = to_exo if ego_first else np.linalg.inv(to_exo)
    # The source is rendered at its content size: the letterbox only places it on the padded canvas.
    src_in = Letterbox.fit(src_image.shape[:2], size)
    src_image, src_mask = src_in.image(src_image), src_in.mask(src_mask)
    if not src_mask.any():
        raise NoObjectInSource(f"rig pair {index} ({tier}): the {direction.split('-')[0]} view has no object")
    crop = None if focus is None else _jittered_crop(tgt_frame_mask, focus)
    framing = Framing(tgt_frame.shape[:2], crop, size)
    to_target = _framing_map(framing) @ to_target
    tgt_image, tgt_mask = framing.image(tgt_frame), framing.mask(tgt_frame_mask)
    src, tgt, valid, prompt = target_points(
        src_mask, to_target, framing.letterbox.content_hw, n_points, noise=None
    )
    images = np.stack([src_image, tgt_image])
    return TrainSample(
        images, src_mask, tgt_mask, src, tgt, valid, False, prompt, "rig" if focus is None else "focus"
    )


FOCUS_SCALE_JITTER = (0.7, 1.5)  # the box the crop is made from, relative to the object's true box
FOCUS_SHIFT_JITTER = 0.3  # its centre's offset, in box sides


def _jittered_crop(mask: np.ndarray, rng: np.random.Generator) -> SquareCrop | None:
    """The focus crop of an object (H, W) mask whose box is off by a random scale and shift, as a
    previous frame's mask or a first whole-frame look may be; None (seen whole) for an absent or large
    object."""
    box = bbox(mask)
    if box is None:
        return None
    side = max(box.width, box.height) * rng.uniform(*FOCUS_SCALE_JITTER)
    # The centre of the outermost pixels (x1, y1 are one past them).
    centre = np.array([box.x0 + box.x1 - 1, box.y0 + box.y1 - 1]) / 2
    cx, cy = centre + rng.uniform(-1, 1, 2) * FOCUS_SHIFT_JITTER * side
    half = side / 2
    jittered = Box(round(cx - half), round(cy - half), round(cx + half) + 1, round(cy + half) + 1)
    return focus_crop(jittered, mask.shape, KEEP_MAX)


def _framing_map(framing: Framing) -> np.ndarray:
    """(3, 3) map of frame pixel centres to model-input pixel centres under `framing`."""
    crop = framing.crop
    if crop is None:
        return _pixel_scale(framing.frame_hw, framing.letterbox.content_hw)
    shift = np.array([[1.0, 0, -crop.x1], [0, 1, -crop.y1], [0, 0, 1]])
    return _pixel_scale((crop.side, crop.side), framing.letterbox.content_hw) @ shift


EXAMPLE_SCENE_SEED = 0  # the bundled example's scene: never trained on
SCENE_SEEDS = 32  # scenes 1..32 are drawn (each made once per process, then cached)
SCENE_MAX_GAP = 0.5  # seconds between the two frames of a temporal scene pair


@functools.lru_cache(maxsize=32)
def _scene(seed: int) -> Scene:
    return Scene.generate(seed)


def _pixel_scale(frame_hw: tuple[int, int], content_hw: tuple[int, int]) -> np.ndarray:
    """(3, 3) map of pixel centres of a frame to those of its resize to `content_hw`."""
    return centred(np.diag([content_hw[1] / frame_hw[1], content_hw[0] / frame_hw[0], 1.0]))


def _jitter_camera(camera: CameraPath, rng: np.random.Generator) -> CameraPath:
    """The example rig's camera at another zoom, heading and look-at point."""
    cx, cy = camera.centre
    return dataclasses.replace(
        camera,
        zoom=camera.zoom * float(rng.uniform(0.6, 1.4)),
        angle=camera.angle + float(rng.uniform(-np.pi, np.pi)),
        centre=(cx + float(rng.uniform(-60, 60)), cy + float(rng.uniform(-60, 60))),
    )


def scene_sample(rng: np.random.Generator, size: int, n_points: int) -> TrainSample:
    """Two frames of a `synth.scene` recording (seed 1..SCENE_SEEDS): one camera at two moments up to
    SCENE_MAX_GAP apart, or ego and exo at one moment (either way round). Raises NoObjectInSource when the
    source frame does not show the object."""
    scene = _scene(int(rng.integers(1, SCENE_SEEDS + 1)))
    cams = [_jitter_camera(c, rng) for c in ego_exo_cameras(scene.duration)]
    t1 = float(rng.uniform(0, scene.duration))
    if rng.random() < 0.5:  # temporal: the same camera a moment later or earlier
        src_cam = tgt_cam = cams[int(rng.integers(2))]
        t2 = float(np.clip(t1 + rng.uniform(-SCENE_MAX_GAP, SCENE_MAX_GAP), 0, scene.duration))
    else:  # cross: the other camera at the same instant
        src_cam, tgt_cam = cams if rng.random() < 0.5 else cams[::-1]
        t2 = t1
    views = []
    for cam, t in ((src_cam, t1), (tgt_cam, t2)):
        index = min(cam.num_frames - 1, round(t * float(cam.fps)))
        image, mask = scene.render(cam, index)
        box = Letterbox.fit(image.shape[:2], size)
        views.append((cam, index, box, box.image(image), box.mask(mask)))
    (c1, i1, b1, img1, m1), (c2, i2, b2, img2, m2) = views
    if not m1.any():
        raise NoObjectInSource("scene pair: the source frame has no object")
    # Object points move with the object on the plane between the two moments.
    (x1, y1), (x2, y2) = scene.object_position(c1.time(i1)), scene.object_position(c2.time(i2))
    shift = np.array([[1, 0, x2 - x1], [0, 1, y2 - y1], [0, 0, 1]])
    frame_to_frame = c2.homography(c2.time(i2)) @ shift @ np.linalg.inv(c1.homography(c1.time(i1)))
    to_target = (
        _pixel_scale(b2.frame_hw, b2.content_hw)
        @ frame_to_frame
        @ np.linalg.inv(_pixel_scale(b1.frame_hw, b1.content_hw))
    )
    src, tgt, valid, prompt = target_points(m1, to_target, b2.content_hw, n_points, noise=None)
    images = np.stack([img1, img2])
    return TrainSample(images, m1, m2, src, tgt, valid, False, prompt, "scene")


class SampleStream:
    """Endless training data: sample i of step s is drawn from its own generator seeded by (seed, s, i),
    so any step can be rebuilt exactly (a resumed run sees the batches an uninterrupted one would).
    `mix` weights the kinds (keys among KINDS); rig and focus pairs take a random direction and tier."""

    def __init__(self, seed: int, size: int, n_points: int, mix: dict[str, float]) -> None:
        unknown = sorted(set(mix) - set(KINDS))
        if unknown:
            raise UsageError(f"unknown sample kinds {', '.join(unknown)}; use {', '.join(KINDS)}")
        weights = np.array([float(mix.get(kind, 0.0)) for kind in KINDS])
        if (weights < 0).any() or weights.sum() <= 0:
            raise UsageError(f"sample mix weights must be >= 0 with a positive sum, got {mix}")
        self.seed, self.size, self.n_points = seed, size, n_points
        self.probs = weights / weights.sum()

    def sample(self, step: int, index: int) -> TrainSample:
        """Sample `index` of batch `step`."""
        rng = np.random.default_rng((self.seed, step, index))
        kind = KINDS[int(rng.choice(len(KINDS), p=self.probs))]
        if kind in ("rig", "focus"):
            return self._rig(rng, focus=kind == "focus")
        if kind == "scene":
            return self._retry(lambda: scene_sample(rng, self.size, self.n_points))
        return single_image_sample(rng, self.size, self.n_points, kind)

    def _rig(self, rng: np.random.Generator, focus: bool) -> TrainSample:
        """A rig pair of a random index, direction and tier whose source view shows the object."""

        def draw() -> TrainSample:
            direction = DIRECTIONS[int(rng.integers(len(DIRECTIONS)))]
            tier = tuple(TIERS)[int(rng.integers(len(TIERS)))]
            index = int(rng.integers(2**31))
            return rig_sample(index, self.size, self.n_points, direction, tier, rng if focus else None)

        return self._retry(draw)

    @staticmethod
    def _retry(draw: Callable[[], TrainSample]) -> TrainSample:
        """`draw()` again (it advances its generator) while its source view does not show the object."""
        for _ in range(SOURCE_VIEW_TRIES):
            try:
                return draw()
            except NoObjectInSource:
                continue
        raise VggtsError(f"{SOURCE_VIEW_TRIES} rendered pairs in a row had no object in their source view")

    def batch(self, step: int, batch_size: int) -> dict[str, torch.Tensor]:
        """Batch `step` as tensors (see `collate`)."""
        return collate([self.sample(step, i) for i in range(batch_size)])


def collate(samples: list[TrainSample]) -> dict[str, torch.Tensor]:
    """Stack samples: images (B, 2, 3, S, S) float in [0, 1]; src_mask, tgt_mask (B, S, S) bool;
    src_points, tgt_points, prompt_points (B, N, 2) float32; points_valid (B, N) bool; synth_points (B,)."""
    return {
        "images": to_tensor(np.stack([s.images for s in samples])),
        "src_mask": torch.from_numpy(np.stack([s.src_mask for s in samples])),
        "tgt_mask": torch.from_numpy(np.stack([s.tgt_mask for s in samples])),
        "src_points": torch.from_numpy(np.stack([s.src_points for s in samples])),
        "tgt_points": torch.from_numpy(np.stack([s.tgt_points for s in samples])),
        "prompt_points": torch.from_numpy(np.stack([s.prompt_points for s in samples])),
        "points_valid": torch.from_numpy(np.stack([s.points_valid for s in samples])),
        "synth_points": torch.tensor([s.synth_points for s in samples]),
    }
