"""Rendered ego/exo rig pairs (vggts_cli.synth.rig): determinism, geometry, tiers, seeds, texture sources."""

from __future__ import annotations

import math
import sys
from dataclasses import fields, replace

import cv2
import numpy as np
import pytest

from vggts_cli.synth import textures
from vggts_cli.synth.rig import (
    TIERS,
    VALIDATION_BASE,
    RigPair,
    render_rig_pair,
    training_seed,
    validation_seeds,
    warp_points,
)

TINY = ((84, 112), (63, 112))  # training sizes
SMALL = ((240, 320), (270, 480))  # large enough that a far exo object still spans many pixels
SEEDS = range(12)


def _steady(tier: str, **changes) -> object:
    """`tier` without occluders or leaving the frame (unless `changes` say otherwise)."""
    return replace(TIERS[tier], occluder_prob=0.0, leave_prob=0.0, **changes)


def _touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def test_same_seed_same_pair_and_seeds_differ():
    a, b = render_rig_pair(5, "hard", *TINY), render_rig_pair(5, "hard", *TINY)
    for f in fields(RigPair):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y, f.name
    c = render_rig_pair(6, "hard", *TINY)
    assert not np.array_equal(a.ego, c.ego) and not np.array_equal(a.exo, c.exo)
    assert not np.allclose(a.ego_to_exo, c.ego_to_exo)


@pytest.mark.parametrize("sizes", [TINY, ((480, 640), (540, 960))])
def test_shapes_and_dtypes(sizes):
    (he, we), (hx, wx) = sizes
    pair = render_rig_pair(3, "medium", *sizes)
    assert pair.ego.shape == (he, we, 3) and pair.ego.dtype == np.uint8
    assert pair.exo.shape == (hx, wx, 3) and pair.exo.dtype == np.uint8
    for mask, hw in ((pair.ego_mask, (he, we)), (pair.ego_distractors, (he, we))):
        assert mask.shape == hw and mask.dtype == bool
    for mask in (pair.exo_mask, pair.exo_distractors):
        assert mask.shape == (hx, wx) and mask.dtype == bool
    assert pair.ego_to_exo.shape == (3, 3) and pair.ego_to_exo.dtype == np.float64
    assert pair.tier == "medium" and pair.seed == 3
    assert pair.ego.std() > 10 and pair.exo.std() > 10  # textured, not a flat fill


@pytest.mark.parametrize("tier", list(TIERS))
def test_homography_carries_ego_object_onto_exo_object(tier):
    """Ego object pixels that are in the exo frame land on the exo object (no occluders; leaving allowed)."""
    checked = 0
    for seed in SEEDS:
        pair = render_rig_pair(seed, replace(TIERS[tier], occluder_prob=0.0), *SMALL)
        if pair.exo_mask.sum() < 100:
            continue
        ys, xs = np.nonzero(pair.ego_mask)
        mapped = np.rint(warp_points(pair.ego_to_exo, np.stack([xs, ys], axis=1))).astype(int)
        hx, wx = pair.exo_mask.shape
        inside = (mapped[:, 0] >= 0) & (mapped[:, 0] < wx) & (mapped[:, 1] >= 0) & (mapped[:, 1] < hx)
        if inside.sum() < 100:
            continue
        hits = pair.exo_mask[mapped[inside, 1], mapped[inside, 0]]
        assert hits.mean() >= 0.9, (seed, hits.mean())
        # ...and the look-alikes are elsewhere: ego object pixels never land on a distractor.
        assert not pair.exo_distractors[mapped[inside, 1], mapped[inside, 0]].any()
        checked += 1
    assert checked >= len(SEEDS) // 2


def test_small_render_is_a_downscaled_large_one():
    """Geometry is drawn in resolution-free units: same-aspect sizes show the same scene."""
    small = render_rig_pair(9, "medium", (96, 128), (72, 128))
    large = render_rig_pair(9, "medium", (192, 256), (144, 256))
    for a, b in ((small.ego_mask, large.ego_mask), (small.exo_mask, large.exo_mask)):
        down = cv2.resize(b.astype(np.uint8) * 255, a.shape[::-1], interpolation=cv2.INTER_AREA) >= 128
        assert (a & down).sum() / max((a | down).sum(), 1) > 0.85
    half = np.diag([0.5, 0.5, 1.0]) + np.array([[0, 0, -0.25], [0, 0, -0.25], [0, 0, 0]])  # pixel centres
    expected = half @ large.ego_to_exo @ np.linalg.inv(half)
    assert np.allclose(small.ego_to_exo, expected / expected[2, 2], atol=1e-6)


def _relative_rotation(pair: RigPair) -> float:
    """Degrees the exo view is turned against the ego view at the ego object's centroid."""
    ys, xs = np.nonzero(pair.ego_mask)
    c = np.array([[xs.mean(), ys.mean()]])
    d = warp_points(pair.ego_to_exo, np.concatenate([c, c + [1, 0], c + [0, 1]]))
    jac = np.stack([d[1] - d[0], d[2] - d[0]], axis=1)
    return math.degrees(math.atan2(jac[1, 0] - jac[0, 1], jac[0, 0] + jac[1, 1]))


def _width_fraction(mask: np.ndarray) -> float:
    return math.sqrt(mask.sum()) / mask.shape[1]


def test_easy_tier_is_easy():
    tier = TIERS["easy"]
    for seed in SEEDS:
        pair = render_rig_pair(seed, "easy", *SMALL)
        assert pair.ego_mask.any() and pair.exo_mask.any()
        assert not _touches_border(pair.ego_mask) and not _touches_border(pair.exo_mask)  # never leaves
        assert not pair.ego_distractors.any() and not pair.exo_distractors.any()
        assert abs(_relative_rotation(pair)) <= tier.rotation_deg + 5
        ratio = _width_fraction(pair.ego_mask) / _width_fraction(pair.exo_mask)
        assert 0.6 * tier.scale_ratio[0] <= ratio <= 1.6 * tier.scale_ratio[1]


def test_hard_tier_is_hard():
    tier = _steady("hard")
    ratios, turns, both = [], [], 0
    for seed in SEEDS:
        pair = render_rig_pair(seed, tier, *SMALL)
        both += pair.ego_distractors.any() and pair.exo_distractors.any()
        ratios.append(_width_fraction(pair.ego_mask) / _width_fraction(pair.exo_mask))
        turns.append(abs(_relative_rotation(pair)))
    assert both >= 0.8 * len(SEEDS)  # look-alikes in view of both cameras
    assert np.median(ratios) > 0.8 * tier.scale_ratio[0] and min(ratios) > 1.5
    assert max(turns) > 60  # the viewpoint turns far more than easy's 15 degrees


def test_occluder_hides_part_of_the_object_and_no_more_than_the_cap():
    tier = TIERS["hard"]
    occluded = 0
    for seed in SEEDS:
        with_hand = render_rig_pair(seed, tier, *SMALL)
        without = render_rig_pair(seed, replace(tier, occluder_prob=0.0), *SMALL)
        for seen, whole in ((with_hand.ego_mask, without.ego_mask), (with_hand.exo_mask, without.exo_mask)):
            assert not (seen & ~whole).any()  # the visible mask is part of the unoccluded one
            if seen.sum() < whole.sum():
                occluded += 1
                assert seen.sum() >= (1 - tier.max_occlusion - 0.05) * whole.sum()
                assert not np.array_equal(with_hand.ego, without.ego) or not np.array_equal(
                    with_hand.exo, without.exo
                )
    assert occluded >= 3  # occluder_prob 0.6 over 12 seeds


def test_leaving_cuts_or_empties_a_view():
    tier = replace(TIERS["hard"], leave_prob=1.0, occluder_prob=0.0)
    cut = empty = 0
    for seed in range(16):
        pair = render_rig_pair(seed, tier, *TINY)
        masks = (pair.ego_mask, pair.exo_mask)
        empty += any(not m.any() for m in masks)
        cut += any(m.any() and _touches_border(m) for m in masks)
    assert empty >= 1 and cut >= 1


def test_validation_and_training_seeds_are_disjoint():
    validation = {tier: validation_seeds(tier, 500) for tier in TIERS}
    assert validation["easy"] == validation_seeds("easy", 500)  # fixed
    seen: set[int] = set()
    for seeds in validation.values():
        assert len(set(seeds)) == 500 and not seen & set(seeds)
        seen |= set(seeds)
    training = {training_seed(i) for i in (*range(1000), VALIDATION_BASE - 1)}
    assert not training & seen
    with pytest.raises(ValueError):
        training_seed(VALIDATION_BASE)
    with pytest.raises(ValueError):
        validation_seeds("impossible", 3)


def test_warp_points():
    hom = np.array([[2.0, 0, 1], [0, 3, -1], [0.1, 0, 1]])
    got = warp_points(hom, np.array([[0.0, 0.0], [10.0, 2.0]]))
    assert np.allclose(got, [[1, -1], [21 / 2, 5 / 2]])


def test_textures_fall_back_to_procedural_without_scikit_image(monkeypatch):
    with_photos = len(textures.sources())
    monkeypatch.setitem(sys.modules, "skimage", None)  # `import skimage` now raises ImportError
    textures.sources.cache_clear()
    try:
        assert len(textures.sources()) == textures.PROCEDURAL < with_photos
        crop = textures.random_crop(np.random.default_rng(0), 20, 30)
        assert crop.shape == (20, 30, 3) and crop.dtype == np.uint8 and crop.std() > 5
        pair = render_rig_pair(1, "easy", *TINY)
        assert pair.ego_mask.any()
    finally:
        textures.sources.cache_clear()


def test_patch_renders_windows_and_turns_consistently():
    patch = textures.Patch(0, (0.3, 0.6), 0.5, flip=True, turns=1)
    full = textures.render_patch(patch, 40, 60)
    assert full.shape == (40, 60, 4)
    assert np.array_equal(textures.render_patch(patch, 40, 60, (5, 10, 25, 50)), full[5:25, 10:50])
    plain = textures.render_patch(textures.Patch(0, (0.3, 0.6), 0.5), 60, 40)
    diff = np.abs(np.rot90(cv2.flip(plain, 1)).astype(int) - full).max()
    assert diff <= 1  # same pixels, turned and flipped (up to rounding)
