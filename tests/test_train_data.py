"""Training data and losses: sample shapes, the geometry between the two views, determinism, the kinds'
prompts, pseudo-objects, and the focal + dice loss."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vggts_cli.augment import (
    Viewport,
    adaptive_view,
    centred,
    map_points,
    non_adaptive_view,
    render,
    source_window,
)
from vggts_cli.errors import UsageError
from vggts_cli.model.losses import dice_loss, focal_loss, mask_loss
from vggts_cli.train.photos import Photo, load_photo, photo_names
from vggts_cli.train.regions import MAX_AREA, MIN_AREA, choose_region, region_mask, segment
from vggts_cli.train.samples import (
    KINDS,
    NoObjectInSource,
    SampleStream,
    TrainSample,
    rig_sample,
    scene_sample,
    single_image_sample,
)

SIZE, N_POINTS = 112, 5


def _interior(mask: np.ndarray, margin: float) -> np.ndarray:
    """Pixels of `mask` at least `margin` px from its outside."""
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3) >= margin


def _near(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Whether each point (x, y) rounds to a pixel of `mask` dilated by one pixel."""
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    x, y = np.round(points).astype(int).T
    inside = (x >= 0) & (x < mask.shape[1]) & (y >= 0) & (y < mask.shape[0])
    hit = np.zeros(len(points), dtype=bool)
    hit[inside] = grown[y[inside], x[inside]]
    return hit


def _check_sample(sample: TrainSample, kind: str) -> None:
    assert sample.kind == kind
    assert sample.images.shape == (2, SIZE, SIZE, 3) and sample.images.dtype == np.uint8
    for mask in (sample.src_mask, sample.tgt_mask):
        assert mask.shape == (SIZE, SIZE) and mask.dtype == bool
    assert sample.src_mask.any()
    for points in (sample.src_points, sample.tgt_points, sample.prompt_points):
        assert points.shape == (N_POINTS, 2) and points.dtype == np.float32
    assert sample.points_valid.shape == (N_POINTS,) and sample.points_valid.dtype == bool
    x, y = sample.src_points.astype(int).T
    assert sample.src_mask[y, x].all()  # K-Means points are snapped onto the source mask
    assert sample.synth_points == (kind == "non_adaptive")


def _content_hw(image: np.ndarray) -> tuple[int, int]:
    """(h, w) of the letterbox content: rows/columns that are not all padding (grey 114)."""
    image_px = (image != 114).any(axis=2)
    return int(image_px.any(axis=1).nonzero()[0].max()) + 1, int(image_px.any(axis=0).nonzero()[0].max()) + 1


@pytest.mark.parametrize("kind", ["adaptive", "non_adaptive"])
def test_single_image_samples(kind: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(6):
        sample = single_image_sample(rng, SIZE, N_POINTS, kind)
        _check_sample(sample, kind)
        h, w = _content_hw(sample.images[1])
        assert not sample.tgt_mask[h:].any() and not sample.tgt_mask[:, w:].any()  # no object in the padding
        # Prompts stay in the image; without synthesis they are the clipped true points.
        prompt = sample.prompt_points
        assert (prompt >= 0).all() and (prompt[:, 0] <= w - 1).all() and (prompt[:, 1] <= h - 1).all()
        clipped = np.stack(
            [sample.tgt_points[:, 0].clip(0, w - 1), sample.tgt_points[:, 1].clip(0, h - 1)], 1
        )
        if kind == "adaptive":
            np.testing.assert_array_equal(prompt, clipped)
        else:
            assert 0 < np.abs(prompt - clipped).max() < 0.2 * SIZE
        # Valid points are exactly those whose true position is in the content (up to a half pixel).
        inside = (sample.tgt_points >= -0.5).all(1) & (sample.tgt_points[:, 0] < w - 0.5)
        np.testing.assert_array_equal(sample.points_valid, inside & (sample.tgt_points[:, 1] < h - 0.5))


def test_render_is_pixel_exact() -> None:
    """A view of a whole 112×84 photo at model size 112 (warped at 2×, area-averaged back) reproduces the
    object mask exactly, and a mirrored view mirrors it: no half-pixel shift between photo and input."""
    rng = np.random.default_rng(0)
    image = cv2.resize(
        rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (112, 84), interpolation=cv2.INTER_CUBIC
    )
    mask = np.zeros((84, 112), dtype=bool)
    mask[20:50, 31:77] = True
    photo = Photo("test", (image,), segment(image))
    quad = np.array([[0, 0], [112, 0], [112, 84], [0, 84]], dtype=np.float64)
    rendered, rendered_mask = render(photo.levels, mask, Viewport(quad, (84, 112), SIZE), (0, 0, 0))
    np.testing.assert_array_equal(rendered_mask[:84], mask)
    assert not rendered_mask[84:].any() and (rendered[84:] == 114).all()
    error = np.abs(rendered[:84].astype(int) - image)[1:-1, 1:-1]  # the border pixels see the fill too
    assert error.mean() < 0.5  # the same image, barely softened by the resampling
    _, mirrored = render(photo.levels, mask, Viewport(quad[[1, 0, 3, 2]], (84, 112), SIZE), (0, 0, 0))
    np.testing.assert_array_equal(mirrored[:84], mask[:, ::-1])


def test_training_photos_hold_no_evaluation_images() -> None:
    """The real stereo pair `vggts eval pairs` scores on is never a training photo, whatever the system has
    installed (OpenCV's sample images are reserved for evaluation too)."""
    from skimage import data

    left = data.stereo_motorcycle()[0]
    for name in photo_names():
        assert name.startswith("skimage:")
        photo = getattr(data, name.removeprefix("skimage:"))()
        assert photo.shape != left.shape or not np.array_equal(photo, left), name


@pytest.mark.parametrize("kind", ["adaptive", "non_adaptive"])
def test_views_share_one_homography(kind: str) -> None:
    """Interior source-mask pixels, mapped by the homography between the two inputs, land on the target
    mask; and the true target points of interior source points fall on it."""
    rng = np.random.default_rng(11)
    checked = 0
    while checked < 5:
        photo = load_photo(photo_names()[int(rng.integers(len(photo_names())))])
        src_view, window = source_window(photo.hw, SIZE, rng)
        region = choose_region(photo.segmentation, window, rng)
        if region is None:
            continue
        object_mask, box = region_mask(photo.segmentation, region)
        if kind == "adaptive":
            tgt_view = adaptive_view(window, SIZE, rng)
        else:
            tgt_view = non_adaptive_view(window, box, SIZE, rng)
        _, src_mask = render(photo.levels, object_mask, src_view, (0, 0, 0))
        _, tgt_mask = render(photo.levels, object_mask, tgt_view, (0, 0, 0))
        to_target = centred(tgt_view.to_input() @ np.linalg.inv(src_view.to_input()))
        ys, xs = np.nonzero(_interior(src_mask, 3))
        mapped = map_points(to_target, np.stack([xs, ys], axis=1).astype(np.float64))
        h, w = tgt_view.content_hw
        seen = (mapped[:, 0] >= 0) & (mapped[:, 0] <= w - 1) & (mapped[:, 1] >= 0) & (mapped[:, 1] <= h - 1)
        assert _near(tgt_mask, mapped[seen]).all()
        # and nothing of the target mask comes from outside the object (the reverse direction)
        ty, tx = np.nonzero(_interior(tgt_mask, 3))
        back = map_points(np.linalg.inv(to_target), np.stack([tx, ty], axis=1).astype(np.float64))
        in_src = (back >= 0).all(1) & (back[:, 0] <= SIZE - 1) & (back[:, 1] <= SIZE - 1)
        assert _near(src_mask, back[in_src]).all()
        checked += 1

    rng = np.random.default_rng(5)
    for _ in range(8):
        sample = single_image_sample(rng, SIZE, N_POINTS, kind)
        x, y = sample.src_points.astype(int).T
        interior = _interior(sample.src_mask, 3)[y, x] & sample.points_valid
        assert _near(sample.tgt_mask, sample.tgt_points[interior]).all()


@pytest.mark.parametrize("direction", ["ego-exo", "exo-ego"])
def test_rig_samples(direction: str) -> None:
    for index in range(3):
        sample = rig_sample(index, SIZE, N_POINTS, direction, "easy")  # easy: no occluder hides points
        _check_sample(sample, "rig")
        src_hw, tgt_hw = ((84, 112), (63, 112)) if direction == "ego-exo" else ((63, 112), (84, 112))
        assert _content_hw(sample.images[0]) == src_hw and _content_hw(sample.images[1]) == tgt_hw
        h, w = tgt_hw
        clipped = np.stack(
            [sample.tgt_points[:, 0].clip(0, w - 1), sample.tgt_points[:, 1].clip(0, h - 1)], 1
        )
        np.testing.assert_array_equal(sample.prompt_points, clipped)
        x, y = sample.src_points.astype(int).T
        interior = _interior(sample.src_mask, 2)[y, x] & sample.points_valid
        assert _near(sample.tgt_mask, sample.tgt_points[interior]).all()


@pytest.mark.parametrize("direction", ["ego-exo", "exo-ego"])
def test_focus_samples_see_the_target_through_a_window(direction: str) -> None:
    for index in range(3):
        plain = rig_sample(index, SIZE, N_POINTS, direction, "easy")
        sample = rig_sample(index, SIZE, N_POINTS, direction, "easy", np.random.default_rng(index))
        _check_sample(sample, "focus")
        np.testing.assert_array_equal(sample.images[0], plain.images[0])  # the source is seen whole
        np.testing.assert_array_equal(sample.src_mask, plain.src_mask)
        x, y = sample.src_points.astype(int).T
        interior = _interior(sample.src_mask, 2)[y, x] & sample.points_valid
        assert interior.any() and _near(sample.tgt_mask, sample.tgt_points[interior]).all()


def test_focus_magnifies_small_exo_objects() -> None:
    for index in range(3):
        plain = rig_sample(index, SIZE, N_POINTS, "ego-exo", "hard")
        focused = rig_sample(index, SIZE, N_POINTS, "ego-exo", "hard", np.random.default_rng(index))
        assert focused.tgt_mask.sum() > 4 * plain.tgt_mask.sum() > 0


def test_scene_samples_are_temporal_or_cross_pairs_with_exact_points() -> None:
    rng = np.random.default_rng(5)
    samples = []
    while len(samples) < 8:
        try:
            samples.append(scene_sample(rng, SIZE, N_POINTS))
        except NoObjectInSource:
            continue
    content = {(_content_hw(s.images[0]), _content_hw(s.images[1])) for s in samples}
    assert {((84, 112), (84, 112)), ((63, 112), (63, 112))} & content  # a camera and itself later
    assert {((84, 112), (63, 112)), ((63, 112), (84, 112))} & content  # ego and exo at one instant
    hits = []
    for sample in samples:
        _check_sample(sample, "scene")
        x, y = sample.src_points.astype(int).T
        interior = _interior(sample.src_mask, 2)[y, x] & sample.points_valid
        hits += list(_near(sample.tgt_mask, sample.tgt_points[interior]))
    assert np.mean(hits) >= 0.9  # the object moved on the plane between the two moments: points follow it


def test_stream_batches_are_deterministic_and_typed() -> None:
    mix = dict.fromkeys(KINDS, 1.0)
    stream = SampleStream(3, SIZE, N_POINTS, mix)
    batch = stream.batch(4, 3)
    assert batch["images"].shape == (3, 2, 3, SIZE, SIZE) and batch["images"].dtype == torch.float32
    assert 0 <= batch["images"].min() and batch["images"].max() <= 1
    for key in ("src_mask", "tgt_mask"):
        assert batch[key].shape == (3, SIZE, SIZE) and batch[key].dtype == torch.bool
    for key in ("src_points", "tgt_points", "prompt_points"):
        assert batch[key].shape == (3, N_POINTS, 2) and batch[key].dtype == torch.float32
    assert batch["points_valid"].shape == (3, N_POINTS) and batch["points_valid"].dtype == torch.bool
    assert batch["synth_points"].shape == (3,) and batch["synth_points"].dtype == torch.bool

    again = SampleStream(3, SIZE, N_POINTS, mix).batch(4, 3)  # a resumed run rebuilds the same batch
    for key, value in batch.items():
        assert torch.equal(value, again[key]), key
    assert not torch.equal(stream.batch(5, 3)["images"], batch["images"])
    assert not torch.equal(SampleStream(4, SIZE, N_POINTS, mix).batch(4, 3)["images"], batch["images"])
    focus = [SampleStream(3, SIZE, N_POINTS, {"focus": 1.0}).batch(2, 2) for _ in range(2)]
    for key, value in focus[0].items():  # the window's jitter comes from the sample's own generator
        assert torch.equal(value, focus[1][key]), key


def test_stream_mix_decides_the_kinds() -> None:
    stream = SampleStream(0, SIZE, N_POINTS, {"adaptive": 1.0, "non_adaptive": 1.0})
    samples = [stream.sample(step, 0) for step in range(12)]
    assert {s.kind for s in samples} == {"adaptive", "non_adaptive"}
    assert all(s.synth_points == (s.kind == "non_adaptive") for s in samples)
    only = SampleStream(0, SIZE, N_POINTS, {"non_adaptive": 2.0, "rig": 0.0})
    assert {only.sample(step, 1).kind for step in range(3)} == {"non_adaptive"}
    with pytest.raises(UsageError):
        SampleStream(0, SIZE, N_POINTS, {"adaptive": 1.0, "video": 1.0})
    with pytest.raises(UsageError):
        SampleStream(0, SIZE, N_POINTS, dict.fromkeys(KINDS, 0.0))


def test_pseudo_objects_follow_segments_and_area_limits() -> None:
    photo = load_photo("skimage:astronaut")
    seg = photo.segmentation
    rng = np.random.default_rng(0)
    found = 0
    for _ in range(20):
        _, window = source_window(photo.hw, SIZE, rng)
        region = choose_region(seg, window, rng)
        if region is None:
            continue
        found += 1
        mask, (x0, y0, x1, y1) = region_mask(seg, region)
        np.testing.assert_array_equal(mask, np.isin(seg.labels, region))
        assert mask.any() and not mask[:y0].any() and not mask[y1:].any() and not mask[:, x1:].any()
        wx0, wy0, wx1, wy1 = window
        area = mask[wy0:wy1, wx0:wx1].sum() / ((wx1 - wx0) * (wy1 - wy0))
        assert MIN_AREA <= area <= MAX_AREA
        # a connected union of segments (4-connectivity over segment adjacency)
        assert cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)[0] - 1 >= 1
        labels_in_region = set(np.unique(seg.labels[mask]).tolist())
        assert labels_in_region == set(region.tolist())
    assert found >= 15


def test_losses() -> None:
    target = torch.zeros(2, 16, 16)
    target[0, 4:12, 4:12] = 1
    target[1, :8] = 1
    perfect = (target * 2 - 1) * 20
    assert mask_loss(perfect, target) < 1e-3
    assert mask_loss(-perfect, target) > 10
    assert focal_loss(perfect, target).shape == dice_loss(perfect, target).shape == (2,)

    # SAM's weighting: 20 · focal + dice, each the per-sample mean, then the batch mean
    logits = torch.randn(2, 16, 16, requires_grad=True)
    expected = (20 * focal_loss(logits, target) + dice_loss(logits, target)).mean()
    torch.testing.assert_close(mask_loss(logits, target), expected)
    mask_loss(logits, target).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0

    # focal: α = 0.25 on object pixels, 0.75 on background (equal logits of 0: BCE = log 2, (1 - p_t)^2 = 1/4)
    zero = torch.zeros(1, 1, 2)
    log2 = float(np.log(2))
    torch.testing.assert_close(focal_loss(zero, torch.ones(1, 1, 2)), torch.tensor([0.25 * 0.25 * log2]))
    torch.testing.assert_close(focal_loss(zero, torch.zeros(1, 1, 2)), torch.tensor([0.75 * 0.25 * log2]))

    # dice on an empty target: defined, ~0 for an empty prediction, ~1 for a full one
    empty = torch.zeros(1, 8, 8)
    assert dice_loss(torch.full((1, 8, 8), -30.0), empty) < 1e-6
    assert dice_loss(torch.full((1, 8, 8), 30.0), empty) > 0.95
    grad_logits = torch.zeros(1, 8, 8, requires_grad=True)
    mask_loss(grad_logits, empty.bool()).backward()
    assert torch.isfinite(grad_logits.grad).all()
