"""The learned engine on a random-weight VGGT_S_TINY: shapes, scores, determinism, reference handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from models import make_tiny_checkpoint, make_tiny_model

from vggts_cli.engines.base import Prediction, Reference, View
from vggts_cli.engines.learned.engine import (
    FEATURE_CACHE,
    KIND_WEIGHTS,
    LearnedEngine,
    _share_crop,
    fuse_logits,
)
from vggts_cli.engines.learned.focus import focus_crop
from vggts_cli.engines.registry import default_engine, make_engine
from vggts_cli.errors import UsageError
from vggts_cli.geometry import Box
from vggts_cli.masks.ops import iou
from vggts_cli.model.configs import VGGT_S_LITE
from vggts_cli.model.io import DEFAULT_MODEL, shipped_model_path
from vggts_cli.model.vggts import VGGTS

TARGET_SIZES = ((120, 90), (64, 150))  # (H, W): portrait and landscape, both smaller than the model input


def _frame(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured RGB frame with a bright rectangle (the object) and its mask."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 120, size=(height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), dtype=bool)
    mask[height // 4 : height // 2, width // 3 : 2 * width // 3] = True
    image[mask] = (230, 200, 40)
    return image, mask


def count_backbone_calls(model: VGGTS) -> list[int]:
    """From now on, the batch size of every backbone call of `model`, in order."""
    calls: list[int] = []
    features = model.features

    def counted(images: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        calls.append(images.shape[0])
        return features(images, *rest)

    model.features = counted  # type: ignore[method-assign]
    return calls


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> LearnedEngine:
    path = make_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors")
    return LearnedEngine.load(str(path), "cpu")


@pytest.fixture(scope="module")
def seed_ref() -> Reference:
    image, mask = _frame(96, 128, seed=0)
    return Reference(View("ego", 0, image), mask, "seed")


def _target(hw: tuple[int, int]) -> View:
    return View("exo", 0, _frame(*hw, seed=1)[0])


@pytest.fixture(scope="module")
def predictions(engine: LearnedEngine, seed_ref: Reference) -> dict[tuple[int, int], Prediction]:
    return {hw: engine.segment(_target(hw), [seed_ref]) for hw in TARGET_SIZES}


@pytest.mark.parametrize("hw", TARGET_SIZES)
def test_mask_has_target_size_and_score_in_range(predictions: dict, hw: tuple[int, int]) -> None:
    pred = predictions[hw]
    assert pred.mask.shape == hw and pred.mask.dtype == bool
    assert 0.0 <= pred.score <= 1.0


def test_deterministic(engine: LearnedEngine, seed_ref: Reference, predictions: dict) -> None:
    hw = TARGET_SIZES[0]
    again = engine.segment(_target(hw), [seed_ref])
    assert np.array_equal(again.mask, predictions[hw].mask)
    assert again.score == predictions[hw].score


def test_empty_reference_is_skipped(engine: LearnedEngine, seed_ref: Reference, predictions: dict) -> None:
    hw = TARGET_SIZES[1]
    image, mask = _frame(80, 80, seed=2)
    empty = Reference(View("exo", 5, image), np.zeros_like(mask), "temporal")
    with_empty = engine.segment(_target(hw), [seed_ref, empty])
    assert np.array_equal(with_empty.mask, predictions[hw].mask)
    assert with_empty.score == predictions[hw].score


def test_a_cross_reference_replaces_the_seed(seed_ref: Reference) -> None:
    lite = LearnedEngine(make_tiny_model(cfg=VGGT_S_LITE), "cpu", schedule="pair")
    image, mask = _frame(90, 120, seed=3)
    cross = Reference(View("ego", 7, image), mask, "cross")
    target = _target(TARGET_SIZES[0])
    both = lite.segment(target, [cross, seed_ref])
    alone = lite.segment(target, [cross])
    assert np.array_equal(both.mask, alone.mask) and both.score == alone.score
    assert lite.segment(target, [seed_ref]).score != alone.score  # the seed alone is a different pair


def test_no_usable_reference_gives_empty_mask_and_score_zero(
    engine: LearnedEngine, seed_ref: Reference
) -> None:
    empty = Reference(seed_ref.view, np.zeros_like(seed_ref.mask), "seed")
    pred = engine.segment(_target((50, 70)), [empty])
    assert pred.mask.shape == (50, 70) and not pred.mask.any()
    assert pred.score == 0.0


def test_no_model_means_the_shipped_one() -> None:
    shipped = make_engine("vggts", None, "cpu")
    assert isinstance(shipped, LearnedEngine)
    assert shipped.model.cfg.name == DEFAULT_MODEL
    assert shipped_model_path().stat().st_size <= 40 * 2**20  # the package budget


def test_default_engine_follows_real_validation_only(tmp_path, monkeypatch) -> None:
    """The shipped model leads on our rendered scenes and loses the object on real video: only scores on
    real footage can make it the default; without them (or with an unreadable file) it is classic."""
    import json

    from vggts_cli.engines import registry

    real = tmp_path / "real_validation.json"
    monkeypatch.setattr(registry, "REAL_VALIDATION_RESULTS", real)
    assert default_engine() == "classic"
    real.write_text("{not json")
    assert default_engine() == "classic"
    cells = {"davis-train": {"classic": {"score": 0.6}, "vggts": {"score": 0.7}}}
    real.write_text(
        json.dumps({"results": {**cells, "stereo": {"classic": {"score": 0.5}, "vggts": {"score": 0.2}}}})
    )
    assert default_engine() == "classic"  # mean 0.55 against 0.45
    real.write_text(json.dumps({"results": cells}))
    assert default_engine() == "vggts"


def test_windowed_schedule_reuses_features_and_matches_the_pair_schedule(seed_ref: Reference) -> None:
    """With only the seed as reference the windowed pair is the very pair of the per-pair schedule.

    Whole frames only: focusing (tested below) adds passes of its own windows."""
    model = make_tiny_model(cfg=VGGT_S_LITE)
    targets = [View("exo", i, _frame(*TARGET_SIZES[i % 2], seed=10 + i)[0]) for i in range(5)]
    per_pair = LearnedEngine(model, "cpu", schedule="pair", focus=False)
    expected = [per_pair.segment(view, [seed_ref]) for view in targets]

    windowed = LearnedEngine(model, "cpu", schedule="windowed", window=3, focus=False)
    calls = count_backbone_calls(model)
    windowed.prepare(seed_ref.view, targets)
    assert calls == [3, 3]  # two batches of announced frames (the last padded to the window), nothing else
    for view, b in zip(targets, expected, strict=True):
        a = windowed.segment(view, [seed_ref])
        assert (a.mask != b.mask).mean() < 1e-3
        assert a.score == pytest.approx(b.score, abs=1e-4)
    # A temporal reference brings its own cached features: still no backbone call.
    refs = [seed_ref, Reference(targets[0], np.ones(targets[0].image.shape[:2], bool), "temporal")]
    windowed.segment(targets[1], refs)
    assert calls == [3, 3]
    # A new job (another seed View) starts a fresh cache.
    other_seed = View(seed_ref.view.camera, 0, seed_ref.view.image.copy())
    windowed.segment(targets[0], [Reference(other_seed, seed_ref.mask, "seed")])
    assert calls == [3, 3, 3]


def test_features_do_not_depend_on_the_frames_batched_with_them(seed_ref: Reference) -> None:
    """What `--resume` relies on: a frame announced with others, alone, or computed on a cache miss gets the
    same bits (every backbone batch is a full window)."""
    model = make_tiny_model(cfg=VGGT_S_LITE)
    targets = [View("exo", i, _frame(64, 150, seed=30 + i)[0]) for i in range(5)]
    together = LearnedEngine(model, "cpu", schedule="windowed", window=4, focus=False)
    together.prepare(seed_ref.view, targets)
    alone = LearnedEngine(model, "cpu", schedule="windowed", window=4, focus=False)
    alone.prepare(seed_ref.view, targets[2:3])
    for engine in (together, alone):
        assert engine._job.features.peek(("exo", 2, None)) is not None
    a, b = (e._job.features.peek(("exo", 2, None)) for e in (together, alone))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    missed = LearnedEngine(model, "cpu", schedule="windowed", window=4, focus=False)
    assert torch.equal(missed._cached(seed_ref.view, targets[2], None)[1], b[1])  # type: ignore[index]


def test_an_announcement_larger_than_the_cache_is_kept_whole(seed_ref: Reference) -> None:
    """A GPU window times several cameras can announce more frames than FEATURE_CACHE: none is dropped."""
    model = make_tiny_model(cfg=VGGT_S_LITE)
    engine = LearnedEngine(model, "cpu", schedule="windowed", window=16, focus=False)
    image = _frame(48, 64, seed=5)[0]
    targets = [View("exo", i, image) for i in range(FEATURE_CACHE + 8)]
    calls = count_backbone_calls(model)
    engine.prepare(seed_ref.view, targets)
    batches = [16] * -(-len(targets) // 16)  # full windows, the last one padded
    assert calls == batches
    for view in (targets[0], targets[-1]):
        engine.segment(view, [seed_ref])
    assert calls == batches


EXO_HW = (270, 480)


def _small_object_camera(count: int, seed: int) -> tuple[VGGTS, LearnedEngine, list[View], np.ndarray]:
    """A focusing engine (window 4) on a random-weight lite model, `count` exo frames and a small object's
    mask in them."""
    model = make_tiny_model(cfg=VGGT_S_LITE)
    engine = LearnedEngine(model, "cpu", schedule="windowed", window=4)
    frames = [View("exo", i, _frame(*EXO_HW, seed=seed + i)[0]) for i in range(count)]
    small = np.zeros(EXO_HW, dtype=bool)
    small[100:120, 200:225] = True
    return model, engine, frames, small


def test_focus_follows_the_previous_mask_and_keeps_its_window(seed_ref: Reference) -> None:
    """A small object in the camera's previous frame: the target is seen through the window around it, and
    announced frames of that camera are framed by it, so a mask that still fits costs no backbone pass. When
    the object leaves the window, the target and the camera's next announced frames are framed anew in one
    backbone batch."""
    model, engine, frames, small = _small_object_camera(6, seed=20)
    hw = EXO_HW
    window = focus_crop(Box(200, 100, 225, 120), hw)
    assert window is not None and window.side < hw[0]

    first = engine.segment(frames[1], [seed_ref, Reference(frames[0], small, "temporal")])
    inside = np.zeros(hw, dtype=bool)
    inside[window.y1 : window.y2, window.x1 : window.x2] = True
    assert not first.mask[~inside].any()

    calls = count_backbone_calls(model)
    engine.prepare(seed_ref.view, frames[2:])
    assert calls == [4]  # four frames, one window
    moved = np.roll(small, 3, axis=1)  # a few pixels on: still well inside the window
    engine.segment(frames[2], [seed_ref, Reference(frames[1], moved, "temporal")])
    assert calls == [4]
    # Out of the window: a new window for the target and the two frames announced after it, and the
    # reference, whose mask its own window would cut, seen whole: one more batch.
    far = np.roll(small, 120, axis=1)
    engine.segment(frames[3], [seed_ref, Reference(frames[2], far, "temporal")])
    assert calls == [4, 4]
    # The next frames are framed by the new window already, the previous frame brings its own pass.
    engine.segment(frames[4], [seed_ref, Reference(frames[3], np.roll(far, 2, axis=0), "temporal")])
    assert calls == [4, 4]


def test_a_focusing_engine_frames_a_cameras_frames_once_it_knows_their_crop(seed_ref: Reference) -> None:
    """Before its first frame of a camera, a focusing engine does not know the crop that camera's frames
    will be seen through: announced frames wait, and the first frame's window frames the ones after it."""
    model, engine, frames, small = _small_object_camera(5, seed=50)
    calls = count_backbone_calls(model)
    engine.prepare(seed_ref.view, frames[1:])
    assert calls == []
    engine.segment(frames[1], [seed_ref, Reference(frames[0], small, "temporal")])
    # frames 1-4 through the crop around the previous mask; frame 0, never segmented, seen whole.
    assert calls == [4, 4]
    for n in (2, 3):
        engine.segment(frames[n], [seed_ref, Reference(frames[n - 1], small, "temporal")])
    engine.prepare(seed_ref.view, frames[4:])
    assert calls == [4, 4]


def test_objects_looking_for_a_target_share_the_crop_of_those_following_it(seed_ref: Reference) -> None:
    """One target, three objects: two follow the camera's previous masks, one lost object has looked at the
    whole frame. Where that look lands inside the followers' crop it shares their crop (one backbone
    pass); elsewhere it gets its own."""
    model = make_tiny_model(cfg=VGGT_S_LITE)
    engines = LearnedEngine(model, "cpu", schedule="windowed").for_objects(3)
    hw = (270, 480)
    previous, target = (View("exo", i, _frame(*hw, seed=40 + i)[0]) for i in range(2))
    masks = [np.zeros(hw, dtype=bool) for _ in range(2)]
    masks[0][100:115, 200:215] = True
    masks[1][110:125, 225:240] = True
    tasks = [
        e._task(target, [seed_ref, Reference(previous, m, "temporal")])
        for e, m in zip(engines[:2], masks, strict=True)
    ]
    lost = engines[2]._task(target, [seed_ref])
    assert lost.search and not any(t.search for t in tasks)

    def looked(y: int, x: int) -> None:
        logits = torch.full(hw, -5.0)
        logits[y : y + 10, x : x + 10] = 5.0
        lost.look, lost.crop = (logits, 0.99), None
        _share_crop([*tasks, lost])

    looked(112, 215)  # between the two followed objects
    assert tasks[0].crop is not None and tasks[0].crop == tasks[1].crop == lost.crop
    looked(20, 420)  # far away, near a corner
    assert tasks[0].crop == tasks[1].crop
    assert lost.crop is not None and lost.crop != tasks[0].crop


def test_focus_finds_small_objects_that_the_whole_frame_misses() -> None:
    """The shipped model on hard rendered pairs (ego→exo: the exo object is a few model pixels wide)."""
    from vggts_cli.synth.rig import render_rig_pair, validation_seeds

    model = make_engine("vggts", None, "cpu").model  # type: ignore[attr-defined]
    focused, whole = LearnedEngine(model, "cpu"), LearnedEngine(model, "cpu", focus=False)
    ious: dict[bool, list[float]] = {True: [], False: []}
    for seed in validation_seeds("hard", 10):
        pair = render_rig_pair(seed, "hard")
        if not (pair.ego_mask.any() and pair.exo_mask.any()):
            continue
        refs = [Reference(View("ego", 0, pair.ego), pair.ego_mask, "cross")]
        for engine, key in ((focused, True), (whole, False)):
            ious[key].append(iou(pair.exo_mask, engine.segment(View("exo", 0, pair.exo), refs).mask))
    assert len(ious[True]) >= 8
    assert np.mean(ious[True]) > np.mean(ious[False]) + 0.1, ious


def test_unknown_schedule_is_a_usage_error(engine: LearnedEngine) -> None:
    with pytest.raises(UsageError, match="schedule"):
        LearnedEngine(engine.model, "cpu", schedule="batched")  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is absent")
def test_cuda_without_cuda_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="CUDA"):
        LearnedEngine.load(str(tmp_path / "unused.safetensors"), "cuda")


def test_fusion_weights() -> None:
    assert KIND_WEIGHTS["seed"] == KIND_WEIGHTS["cross"] > KIND_WEIGHTS["temporal"] > 0
    logits = torch.stack([torch.full((2, 3), 1.0), torch.full((2, 3), -2.0)])
    fused = fuse_logits(logits, torch.tensor([KIND_WEIGHTS["seed"], KIND_WEIGHTS["temporal"]]))
    torch.testing.assert_close(fused, torch.full((2, 3), (1.0 - 2.0 * 0.5) / 1.5))
