"""Test-time adaptation (engines/learned/adapt.py): the learned engine tunes itself to a job's masks, the same
way every time, and a new job starts from the model as loaded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models import make_tiny_model

from vggts_cli.engines.base import Reference, View
from vggts_cli.engines.learned.adapt import AdaptConfig, draw_pairs, tuned_parameters
from vggts_cli.engines.learned.engine import LearnedEngine
from vggts_cli.engines.registry import check_model
from vggts_cli.errors import UsageError
from vggts_cli.model.configs import VGGT_S_LITE

FEW = AdaptConfig(steps=3, pairs=8, batch=4)


def anchor(seed: int = 0) -> Reference:
    """A textured 60×80 frame with a bright disc, the disc as the mask."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 120, (60, 80, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:60, :80]
    mask = (yy - 30) ** 2 + (xx - 45) ** 2 < 12**2
    image[mask] = (230, 200, 40)
    return Reference(View("cam", 0, image), mask, "seed")


def tuned_state(engine: LearnedEngine) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in tuned_parameters(engine.model).items()}


def test_pairs_show_the_anchor_object_exactly_where_the_views_put_it():
    pairs = draw_pairs([anchor()], size=112, n_points=5, count=12, seed=0)
    assert pairs.images.shape == (12, 2, 3, 112, 112)
    assert pairs.src_masks.flatten(1).any(1).all()  # every source shows the object
    assert pairs.tgt_masks.flatten(1).any(1).float().mean() > 0.5  # most targets too
    # A target's true points lie on its object mask (strong warps add prompt noise: not those).
    exact = ~pairs.synth
    points = pairs.true_points[exact].round().long().clamp(0, 111)
    masks = pairs.tgt_masks[exact]
    on_object = masks[torch.arange(len(masks))[:, None], points[..., 1], points[..., 0]]
    shown = masks.flatten(1).any(1)
    assert on_object[shown].float().mean() > 0.8


def test_tuning_is_the_same_every_time_and_a_new_job_starts_from_the_loaded_model():
    engine = LearnedEngine(make_tiny_model(cfg=VGGT_S_LITE), "cpu", adapt=FEW)  # 112 px: fast steps
    loaded = tuned_state(engine)
    frozen = {k: p.detach().clone() for k, p in engine.model.named_parameters() if k not in loaded}
    engine.start([anchor()])
    first = tuned_state(engine)
    assert any(not torch.equal(first[k], loaded[k]) for k in loaded)
    assert all(torch.equal(p, frozen[k]) for k, p in engine.model.named_parameters() if k in frozen)
    assert not any(p.requires_grad for p in engine.model.parameters())
    engine.start([anchor(1)])  # another job: tuned from the loaded model, not from the last job's
    engine.start([anchor()])
    assert all(torch.equal(p, first[k]) for k, p in tuned_state(engine).items())  # as a resumed job needs
    engine.adapt = AdaptConfig(steps=0)
    engine.start([anchor()])
    assert all(torch.equal(p, loaded[k]) for k, p in tuned_state(engine).items())


def test_tuning_applies_to_the_learned_engine_only():
    check_model(["vggts"], None, adapt=0)
    with pytest.raises(UsageError, match="--adapt applies to --engine vggts"):
        check_model(["classic"], None, adapt=10)
    with pytest.raises(UsageError, match="adapt -1: steps must be 0"):
        check_model(["vggts"], None, flag="", adapt=-1)
