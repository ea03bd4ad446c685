"""Test-time adaptation: before a job propagates, the learned engine tunes its model to the user's masks.

The shipped model learned from rendered scenes and a few photographs; on real footage its feature maps and
head are off (a real photo given as its own target came back almost empty). The user's own frames are the
data that needs no corpus: the paper's single-image strategy applied to them. Each anchor (the seed frame
and every prompt, each with its objects' masks) gives pairs of views of the one frame whose target mask is
known exactly: the source seen whole or through a focus crop, as references are; the target through a
focus crop at another zoom and place, a mild crop and zoom, or a strong perspective and rotation (prompted
with the true points plus noise, as training does for pairs the tracker cannot follow); colour jitter.

The DPT feature maps and the Union Segmentation Head are tuned on them with the training loss; the
aggregator, its ImageNet stem and the tracker stay as they are. On DAVIS train clips, tuning the head alone
lifted J far less than tuning the DPT with it; tuning the aggregator as well cost 30 % more time and was
not consistently better. Deterministic for a given config and anchors, so a resumed job tunes to the same
weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vggts_cli.augment import (
    PROMPT_NOISE,
    Viewport,
    adaptive_view,
    centred,
    fit_content,
    jitter_content,
    non_adaptive_view,
    pyramid,
    rect,
    render,
    target_points,
)
from vggts_cli.engines.base import Reference
from vggts_cli.engines.learned import ADAPT_STEPS
from vggts_cli.geometry import PAD_VALUE, Box, bbox
from vggts_cli.model.losses import mask_loss
from vggts_cli.model.vggts import VGGTS

FOCUS_ZOOM = (2.0, 4.5)  # target focus crop side / the object's box side (the engine's is 3)
SOURCE_ZOOM = (2.5, 3.5)  # a source seen through a focus crop, as a temporal reference is
FOCUS_SHIFT = 0.25  # crop centre offset from the box centre, fraction of the crop side
SHARE_WHOLE_SOURCE = 0.5  # sources seen whole (the seed always is), the rest through a focus crop
TARGET_SHARES = (0.4, 0.4)  # targets through a focus crop, a mild crop; the rest a strong warp
MIRROR = 0.3  # focus-crop targets mirrored
PAD = (PAD_VALUE,) * 3  # outside a source view's frame: the letterbox padding, as at inference
CHUNK = 16  # pairs per forward pass while drawing the tracker's prompts


@dataclass(frozen=True)
class AdaptConfig:
    """How the model is tuned to a job's masks: `steps` optimiser steps (0: not at all) of `batch` pairs
    drawn from `pairs` views made once, AdamW at `lr`; `seed` fixes the views and the batches."""

    steps: int = ADAPT_STEPS
    pairs: int = 64
    batch: int = 8
    lr: float = 3e-4
    seed: int = 0


@dataclass
class AdaptPairs:
    """P [source, target] pairs of views of the anchors (S = model input side, N points).

    images (P, 2, 3, S, S) float in [0, 1]; src_masks, tgt_masks (P, S, S) bool; src_points (P, N, 2) the
    source masks' K-Means points; true_points (P, N, 2) their exact target positions plus noise where
    `synth` (P,) bool, clipped to the target content: the prompt of the pairs the tracker is not asked to
    follow.
    """

    images: torch.Tensor
    src_masks: torch.Tensor
    tgt_masks: torch.Tensor
    src_points: torch.Tensor
    true_points: torch.Tensor
    synth: torch.Tensor


def tuned_parameters(model: VGGTS) -> dict[str, torch.nn.Parameter]:
    """The parameters adaptation changes, by their names in `model.state_dict()`."""
    return {
        name: p
        for name, p in model.named_parameters()
        if name.startswith(("head.", "track_head.feature_extractor."))
    }


def _focus_view(box: Box, size: int, zoom: tuple[float, float], rng: np.random.Generator) -> Viewport:
    """A square window around the object's box, `zoom` × its longer side, shifted a little."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * np.exp(rng.uniform(*np.log(zoom)))
    cx = (x0 + x1) / 2 + rng.uniform(-1, 1) * FOCUS_SHIFT * side
    cy = (y0 + y1) / 2 + rng.uniform(-1, 1) * FOCUS_SHIFT * side
    quad = rect(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    return Viewport(quad, fit_content(side, side, size), size)


def draw_pairs(anchors: Sequence[Reference], size: int, n_points: int, count: int, seed: int) -> AdaptPairs:
    """`count` pairs, each of one anchor's frame and mask (drawn uniformly), see the module docstring."""
    rng = np.random.default_rng(seed)
    levels = {id(ref.view): pyramid(ref.view.image) for ref in anchors}
    images, src_masks, tgt_masks, src_points, true_points, synth = [], [], [], [], [], []
    while len(images) < count:
        ref = anchors[int(rng.integers(len(anchors)))]
        height, width = ref.mask.shape
        box = bbox(ref.mask)
        assert box is not None  # anchors have non-empty masks
        whole = (0, 0, width, height)
        if rng.random() < SHARE_WHOLE_SOURCE:
            src_view = Viewport(rect(*whole), fit_content(height, width, size), size)
        else:
            src_view = _focus_view(box, size, SOURCE_ZOOM, rng)
        kind = rng.random()
        if kind < TARGET_SHARES[0]:
            tgt_view = _focus_view(box, size, FOCUS_ZOOM, rng)
            if rng.random() < MIRROR:
                tgt_view = Viewport(tgt_view.quad[[1, 0, 3, 2]], tgt_view.content_hw, size)
        elif kind < sum(TARGET_SHARES):
            tgt_view = adaptive_view(whole, size, rng)
        else:
            tgt_view = non_adaptive_view(whole, box, size, rng)
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        src_image, src_mask = render(levels[id(ref.view)], ref.mask, src_view, PAD)
        tgt_image, tgt_mask = render(levels[id(ref.view)], ref.mask, tgt_view, fill)
        if not src_mask.any():
            continue
        tgt_image = jitter_content(tgt_image, tgt_view, rng)
        strong = kind >= sum(TARGET_SHARES)
        to_target = centred(tgt_view.to_input() @ np.linalg.inv(src_view.to_input()))
        noise = (rng, PROMPT_NOISE * size) if strong else None
        points, _, _, prompt = target_points(src_mask, to_target, tgt_view.content_hw, n_points, noise)
        images.append(np.stack([src_image, tgt_image]))
        src_masks.append(src_mask)
        tgt_masks.append(tgt_mask)
        src_points.append(points)
        true_points.append(prompt)
        synth.append(strong)
    return AdaptPairs(
        images=torch.from_numpy(np.stack(images)).movedim(-1, -3).float() / 255,
        src_masks=torch.from_numpy(np.stack(src_masks)),
        tgt_masks=torch.from_numpy(np.stack(tgt_masks)),
        src_points=torch.from_numpy(np.stack(src_points)),
        true_points=torch.from_numpy(np.stack(true_points)),
        synth=torch.tensor(synth),
    )


def adapt(model: VGGTS, anchors: Sequence[Reference], cfg: AdaptConfig) -> None:
    """Tune `model`'s `tuned_parameters` in place to the anchors' frames and masks (non-empty, at their
    frames' size), then leave it in eval mode with no gradients. The tracker's prompts are those of the
    model as given (the tracker is not tuned)."""
    if cfg.steps <= 0 or not anchors:
        return
    device = next(model.parameters()).device
    size = model.cfg.img_size
    pairs = draw_pairs(anchors, size, model.cfg.head.n_points, cfg.pairs, cfg.seed)
    images, src_masks = pairs.images.to(device), pairs.src_masks.to(device)
    tgt_masks, src_points = pairs.tgt_masks.to(device).float(), pairs.src_points.to(device)
    model.eval().requires_grad_(False)
    with torch.no_grad():
        tracked = torch.cat(
            [
                model.track(model.features(images[i : i + CHUNK]), src_points[i : i + CHUNK]).coords[-1][:, 1]
                for i in range(0, len(images), CHUNK)
            ]
        ).clamp(0, size - 1)
    prompts = torch.where(pairs.synth.to(device)[:, None, None], pairs.true_points.to(device), tracked)
    params = list(tuned_parameters(model).values())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    draw = torch.Generator().manual_seed(cfg.seed)
    keep = model.cfg.dpt.layer_idx
    try:
        for _ in range(cfg.steps):
            batch = torch.randperm(len(images), generator=draw)[: cfg.batch].to(device)
            with torch.no_grad():  # the aggregator is not tuned: no graph through it
                tokens, start = model.aggregator(images[batch], keep=keep)
            fmaps = model.track_head.features(tokens, tuple(images.shape[-2:]), start)
            logits = model.head.run_passes(
                fmaps[:, 0], fmaps[:, 1], src_masks[batch], prompts[batch], src_points[batch], 1
            )[-1]
            loss = mask_loss(logits, tgt_masks[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        model.eval().requires_grad_(False)
