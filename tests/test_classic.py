"""The classic engine on synthetic scenes whose true masks are known.

Each scene is a textured background (blurred colour noise at two scales plus random shapes) with a distinct
textured object (a rotated ellipse with stripes and its own noise) composited onto it.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vggts_cli.engines.base import Reference, View
from vggts_cli.engines.classic.engine import FINE_OBJECT_PX, ClassicEngine


def background(height: int, width: int, seed: int) -> np.ndarray:
    """A cluttered, textured RGB background (height, width, 3) uint8."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.float32)
    for sigma, gain in ((12.0, 1.0), (2.0, 0.5)):
        noise = rng.normal(0.0, 1.0, (height, width, 3)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), sigma)
        image += gain * noise / noise.std()
    image = np.clip(128 + 40 * image, 0, 255).astype(np.uint8)
    for _ in range(30):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(8, max(9, width // 10)))
        if rng.random() < 0.5:
            cv2.circle(image, (x, y), size, colour, -1)
        else:
            cv2.rectangle(image, (x, y), (x + size, y + size // 2), colour, -1)
    return image


def sprite(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured object: RGB (size, size, 3) uint8 and its mask (size, size) bool."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    cv2.ellipse(mask, (size // 2, size // 2), (size // 2 - 2, size // 3), 20, 0, 360, 1, -1)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    stripes = 0.5 + 0.5 * np.sin((xx + 0.5 * yy) / 4.0)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 1.5)
    rgb = np.stack([200 * stripes + 30 * noise, 60 + 120 * (1 - stripes), 40 + 60 * noise], axis=-1)
    for _ in range(8):
        x, y = (int(v) for v in rng.integers(size // 4, 3 * size // 4, 2))
        cv2.circle(rgb, (x, y), int(rng.integers(3, size // 10)), (255.0, 255.0, 0.0), -1)
    return np.clip(rgb, 0, 255).astype(np.uint8), mask > 0


def composite(scene: np.ndarray, obj: tuple[np.ndarray, np.ndarray], x: int, y: int):
    """The scene with the object's top-left corner at (x, y): image (H, W, 3) uint8, mask (H, W) bool."""
    rgb, shape = obj
    image, mask = scene.copy(), np.zeros(scene.shape[:2], bool)
    size = shape.shape[0]
    image[y : y + size, x : x + size][shape] = rgb[shape]
    mask[y : y + size, x : x + size] = shape
    return image, mask


def moving_scene(height: int, width: int, frames: int, seed: int = 0):
    """A camera panning 1 px/frame left over a background while the object moves (+3, +2) px/frame.

    Returns a list of (image (H, W, 3) uint8, mask (H, W) bool)."""
    wide = background(height, width + frames, seed)
    obj = sprite(min(height, width) // 3, seed + 1)
    out = []
    for t in range(frames):
        out.append(composite(wide[:, t : t + width], obj, width // 4 + 3 * t, height // 4 + 2 * t))
    return out


def spinning_ball(frames: int, blur: int, spin: float, seed: int = 0):
    """A finely textured ball rolling across a panning background: it spins `spin` degrees a frame and, from
    frame 1 on, is smeared by a `blur`-pixel horizontal motion blur (as a fast ball is on real video).

    Returns a list of (image (480, 640, 3) uint8, mask (480, 640) bool)."""
    rng = np.random.default_rng(seed)
    height, width, radius = 480, 640, 40
    wide = background(height, width + frames, seed)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (2 * radius, 2 * radius, 3)).astype(np.float32), (0, 0), 1.0)
    texture = np.clip(150 + 60 * texture / texture.std(), 0, 255).astype(np.uint8)
    disk = np.zeros((2 * radius, 2 * radius), np.uint8)
    cv2.circle(disk, (radius, radius), radius - 1, 1, -1)
    kernel = np.zeros((blur, blur), np.float32)
    kernel[blur // 2, :] = 1.0 / blur
    out = []
    for t in range(frames):
        turn = cv2.getRotationMatrix2D((radius, radius), spin * t, 1.0)
        spun = cv2.warpAffine(texture, turn, (2 * radius, 2 * radius), borderMode=cv2.BORDER_REFLECT)
        image, mask = composite(wide[:, t : t + width], (spun, disk > 0), 150 + 6 * t, 150 + 3 * t)
        if t:
            smeared = cv2.filter2D(image, -1, kernel)
            share = cv2.filter2D(mask.astype(np.float32), -1, kernel)[..., None]
            image = np.clip(image * (1 - share) + smeared * share, 0, 255).astype(np.uint8)
        out.append((image, mask))
    return out


def swinging_limb(frames: int, swing: int, camouflage: bool = False, seed: int = 0):
    """A body crossing a panning background, (+3, +2) px a frame, with a thin limb (12 × 90 px) hanging from
    its side that slides `swing` px a frame down along itself: a leg or an arm with a motion of its own. Its
    texture is its own, or with `camouflage` a patch of the background (a leg the colour of the ground).

    Returns a list of (image (480, 640, 3) uint8, mask (480, 640) bool, the limb's mask (480, 640) bool)."""
    rng = np.random.default_rng(seed)
    height, width = 480, 640
    wide = background(height, width + frames, seed)
    body = sprite(120, seed + 1)
    if camouflage:
        texture = wide[60:150, 500:512].copy()
    else:
        noise = cv2.GaussianBlur(rng.normal(0, 1, (90, 12, 3)).astype(np.float32), (0, 0), 1.0)
        texture = np.clip(np.array([40, 90, 210]) + 50 * noise / noise.std(), 0, 255).astype(np.uint8)
    out = []
    for t in range(frames):
        x, y = 200 + 3 * t, 150 + 2 * t
        image, mask = composite(wide[:, t : t + width], body, x, y)
        limb = np.zeros_like(mask)
        limb[y + 60 + swing * t : y + 150 + swing * t, x + 112 : x + 124] = True
        image[limb] = texture.reshape(-1, 3)
        out.append((image, mask | limb, limb))
    return out


def limb_kept(frames) -> list[float]:
    """Track a `swinging_limb` scene from its first mask: the share of the limb in each later mask."""
    predictions = track(ClassicEngine(), [(image, mask) for image, mask, _ in frames])
    return [(p.mask & limb).sum() / limb.sum() for p, (*_, limb) in zip(predictions, frames[1:], strict=True)]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def track(engine: ClassicEngine, frames) -> list:
    """Run the seed camera's loop: seed on frame 0, then each frame from the seed and the previous one."""
    views = [View("ego", i, image) for i, (image, _) in enumerate(frames)]
    seed = Reference(views[0], frames[0][1], "seed")
    previous = seed
    predictions = []
    for view in views[1:]:
        prediction = engine.segment(view, [seed, Reference(previous.view, previous.mask, "temporal")])
        predictions.append(prediction)
        previous = Reference(view, prediction.mask, "temporal")
    return predictions


def cross_scene(seed: int = 3):
    """A reference view (480, 640) and a target view (540, 960) related by a known perspective warp that
    also enlarges it about 1.2x; the target's border outside the warped view is other clutter. Returns both
    (image, mask) pairs."""
    ref_image, ref_mask = composite(background(480, 640, seed), sprite(180, seed + 1), 220, 140)
    src = np.float32([[0, 0], [640, 0], [640, 480], [0, 480]])
    dst = np.float32([[160, 40], [900, 90], [860, 520], [120, 470]])
    homography = cv2.getPerspectiveTransform(src, dst)
    size = (960, 540)
    warped = cv2.warpPerspective(ref_image, homography, size, flags=cv2.INTER_LINEAR)
    inside = cv2.warpPerspective(np.ones((480, 640), np.uint8), homography, size, flags=cv2.INTER_NEAREST)
    target = np.where(inside[..., None] > 0, warped, background(540, 960, seed + 7))
    target_mask = cv2.warpPerspective(ref_mask.astype(np.uint8), homography, size, flags=cv2.INTER_NEAREST)
    return (ref_image, ref_mask), (target, target_mask > 0)


def cross_refs(reference):
    """What the loop passes for another camera at the seed instant: the cross reference and the seed."""
    view = View("ego", 0, reference[0])
    return [Reference(view, reference[1], "cross"), Reference(view, reference[1], "seed")]


@pytest.fixture(scope="module")
def frames():
    return moving_scene(480, 640, 20)


def test_temporal_tracking_keeps_a_moving_object(frames):
    predictions = track(ClassicEngine(), frames)
    ious = [iou(p.mask, m) for p, (_, m) in zip(predictions, frames[1:], strict=True)]
    # Observed: min IoU 0.988 (0.985 without GrabCut); scores 1.0.
    assert min(ious) > 0.9
    assert min(p.score for p in predictions) > 0.5


def test_fine_detail_keeps_a_small_objects_outline():
    """A 48-px object in a 960-px frame is a 24-px one at the normal working size, where its outline is
    drawn at half the frame's resolution; `--detail fine` (object_px) works at full resolution there."""
    wide = background(540, 972, 5)
    obj = sprite(48, 6)
    frames = [composite(wide[:, t : t + 960], obj, 400 + 3 * t, 250 + 2 * t) for t in range(12)]
    scores = {}
    for object_px in (None, FINE_OBJECT_PX):
        predictions = track(ClassicEngine(object_px=object_px), frames)
        scores[object_px] = [iou(p.mask, m) for p, (_, m) in zip(predictions, frames[1:], strict=True)]
    # Observed: IoU 0.957-0.968 at the normal size, 1.000 on every frame with fine detail.
    assert min(scores[FINE_OBJECT_PX]) > 0.99
    assert min(scores[FINE_OBJECT_PX]) > max(scores[None])


def test_flow_alone_does_not_drift_behind_the_object(frames):
    engine = ClassicEngine(grabcut=False)  # the flow on its own, without GrabCut redrawing the outline
    previous = Reference(View("ego", 0, frames[0][0]), frames[0][1], "temporal")
    ious = []
    for index, (image, truth) in enumerate(frames[1:], start=1):
        prediction = engine.segment(View("ego", index, image), [previous])
        ious.append(iou(prediction.mask, truth))
        previous = Reference(View("ego", index, image), prediction.mask, "temporal")
    # Observed: IoU 0.99 falling slowly to 0.951 after 19 frames with no anchor (a backward warp of the
    # mask fell to 0.58: it lags behind the object at its outline and the lag compounds).
    assert min(ious) > 0.9


def test_doubt_alone_does_not_end_a_track():
    # The ball turns blurred from frame 1 on: its colours no longer match where the flow carries them, so
    # the presence score drops (observed 0.07), but the flow still carries it. Dropping the mask there lost
    # the track for good (observed: IoU 0.00 on every later frame); kept, it follows the ball.
    frames = spinning_ball(10, blur=15, spin=15.0)
    predictions = track(ClassicEngine(), frames)
    ious = [iou(p.mask, truth) for p, (_, truth) in zip(predictions, frames[1:], strict=True)]
    # Observed: IoU 0.85-0.98 on every frame; scores 0.07 on frame 1, 0.67-0.94 after.
    assert predictions[0].score < ClassicEngine().min_score  # the doubt is reported...
    assert min(ious) > 0.7  # ...and the track goes on


def test_a_limb_with_its_own_motion_stays_in_the_track():
    # The limb's flow is reliable but follows neither the body's motion nor the panning background's. Taken
    # for background the mask had taken in, it was dropped: observed, the share of the limb in the mask fell
    # from 0.94 to 0 by frame 7. Carried along its own flow, it stays (DAVIS: legs, arms, a dancer's skirt).
    kept = limb_kept(swinging_limb(12, swing=3))
    # Observed: 0.49-0.95 of the limb on every frame; the whole object's IoU 0.92 at least.
    assert min(kept) > 0.4


def test_grabcut_keeps_a_thin_part_in_the_backgrounds_colours():
    # A limb textured like the background, moving with the body (unlike the panning background). GrabCut,
    # judging its band by colour alone, cut it off on frame 1 (observed: 0.02 of it kept, then 0). The flow's
    # evidence that it moves with the object keeps it.
    kept = limb_kept(swinging_limb(12, swing=0, camouflage=True))
    # Observed: 0.63-0.97 of the limb on every frame; the whole object's IoU 0.93 at least.
    assert min(kept) > 0.5


def test_cross_view_follows_a_perspective_warp():
    reference, (target, truth) = cross_scene()
    prediction = ClassicEngine().segment(View("exo", 0, target), cross_refs(reference))
    assert prediction.mask.shape == truth.shape
    # Observed: IoU 0.986 (ORB, before RootSIFT), 0.987 (SIFT); scores 1.0 and 0.83.
    assert iou(prediction.mask, truth) > 0.9
    assert prediction.score > 0.5


def test_absent_object_gives_low_score_and_empty_mask(frames):
    engine = ClassicEngine()
    image, mask = frames[0]
    # Same camera: the object is gone from the next frame, only the panned background is left.
    gone = np.ascontiguousarray(background(480, 640 + 20, 0)[:, 1 : 1 + 640])
    seed = Reference(View("ego", 0, image), mask, "seed")
    previous = Reference(View("ego", 0, image), mask, "temporal")
    same_camera = engine.segment(View("ego", 1, gone), [seed, previous])
    # Another camera that does not see the object.
    other_camera = engine.segment(View("exo", 0, background(540, 960, 11)), cross_refs(cross_scene()[0]))
    for prediction in (same_camera, other_camera):
        # Observed: scores 0.0 and empty masks.
        assert prediction.score < 0.2
        assert prediction.mask.mean() < 0.005


def test_runs_are_deterministic_whatever_the_cache(frames):
    first = track(ClassicEngine(), frames[:8])
    second = track(ClassicEngine(cache_size=1), frames[:8])  # every frame recomputed, as after a resume
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a.mask, b.mask)
        assert a.score == b.score


def test_cache_notices_a_reused_key(frames):
    engine = ClassicEngine()
    track(engine, frames[:3])  # caches ("ego", 0) for this scene's first frame
    reference, (target, truth) = cross_scene()  # another image under the same key
    prediction = engine.segment(View("exo", 0, target), cross_refs(reference))
    assert iou(prediction.mask, truth) > 0.9


def test_grabcut_keeps_a_clean_mask():
    reference, (target, truth) = cross_scene()
    plain = ClassicEngine(grabcut=False).segment(View("exo", 0, target), cross_refs(reference))
    refined = ClassicEngine().segment(View("exo", 0, target), cross_refs(reference))  # grabcut is on
    # Observed: IoU 0.982 without, 0.986 with.
    assert refined.mask.any()
    assert iou(refined.mask, truth) > iou(plain.mask, truth) - 0.03


def test_mismatched_reference_mask_is_rejected(frames):
    image, mask = frames[0]
    with pytest.raises(ValueError, match="does not match"):
        ClassicEngine().segment(View("ego", 1, image), [Reference(View("ego", 0, image), mask[1:], "seed")])


def _degenerate_cases():
    """(name, reference image, reference mask, target image): inputs that once reached OpenCV with a
    degenerate warp or map (an all-ones mask crashed `remap` with maps over 32767 rows)."""
    image, mask = moving_scene(480, 640, 2)[0]
    busy = background(480, 640, 5)
    ones = np.ones((480, 640), bool)
    border = np.zeros((480, 640), bool)
    border[:4], border[-4:], border[:, :4], border[:, -4:] = True, True, True, True
    flat = np.full((480, 640, 3), (90, 120, 60), np.uint8)
    featureless = cv2.GaussianBlur(busy, (0, 0), 25)
    return [
        ("all-ones mask", busy, ones, busy),
        ("all-ones mask, another frame", busy, ones, np.roll(busy, 7, axis=1)),
        ("mask touching every border", busy, border, busy),
        ("featureless target", image, mask, featureless),
        ("flat target frame", image, mask, flat),
        ("flat reference frame", flat, mask, image),
        ("one-pixel mask", image, np.pad(np.ones((1, 1), bool), ((200, 279), (300, 339))), image),
    ]


@pytest.mark.parametrize("case", range(len(_degenerate_cases())))
@pytest.mark.parametrize("kind", ["seed", "temporal", "cross"])
def test_degenerate_inputs_never_crash(case, kind):
    name, ref_image, ref_mask, target = _degenerate_cases()[case]
    camera = "ego" if kind != "cross" else "exo"
    refs = [Reference(View(camera, 0, ref_image), ref_mask, kind)]
    if kind != "seed":
        refs.append(Reference(View(camera, 0, ref_image), ref_mask, "seed"))
    prediction = ClassicEngine().segment(View("ego", 1, target), refs)
    assert prediction.mask.shape == target.shape[:2], name
    assert 0.0 <= prediction.score <= 1.0, name
    if name.startswith("flat target"):
        # Nothing to find in one flat colour: no match, so at most the flow's guess — never a confident one.
        assert prediction.score < 0.5, name


def test_all_ones_seed_mask_tracks_the_whole_frame(frames):
    """The object is the whole frame: every frame comes back (nearly) all object."""
    ones = np.ones(frames[0][1].shape, bool)
    predictions = track(ClassicEngine(), [(image, ones) for image, _ in frames[:4]])
    assert all(p.mask.mean() > 0.9 for p in predictions)
