"""The whole VGGT-Segmentor: frozen VGGT backbone (aggregator + track head) and the Union Segmentation Head.

The network only; reading and writing its weights is model/io.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vggts_cli.errors import VggtsError
from vggts_cli.model.aggregator import Aggregator
from vggts_cli.model.configs import ModelConfig
from vggts_cli.model.track_head import TrackHead
from vggts_cli.model.tracker import TrackOutput
from vggts_cli.model.union_head import UnionHead


@dataclass
class PairOutput:
    """The head on [source, target] pairs: logits (B, img, img) of the object in the target input and the
    presence (B,) in [0, 1]."""

    logits: torch.Tensor
    presence: torch.Tensor


class VGGTS(nn.Module):
    """VGGT-S: `aggregator` and `track_head` (VGGT's, frozen) and `head` (the Union Segmentation Head)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.aggregator = Aggregator(cfg.aggregator)
        self.track_head = TrackHead(cfg.dpt, cfg.tracker)
        self.head = UnionHead(cfg.head)

    def backbone(self) -> nn.Module:
        """The modules `model.pt` holds (keys `aggregator.*`, `track_head.*`), sharing our parameters."""
        return nn.ModuleDict({"aggregator": self.aggregator, "track_head": self.track_head})

    def features(self, images: torch.Tensor, patches: torch.Tensor | None = None) -> torch.Tensor:
        """images (B, S, 3, H, W) in [0, 1], H and W multiples of the patch size -> DPT feature maps
        (B, S, F, H/2, W/2). `patches` (B, S, P, C): the images' `embed` when the caller has it.

        The aggregator stops after the last layer the DPT reads (all of them for the real model).
        """
        tokens, patch_start_idx = self.aggregator(images, keep=self.cfg.dpt.layer_idx, patches=patches)
        return self.track_head.features(tokens, tuple(images.shape[-2:]), patch_start_idx)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The per-image patch tokens (N, P, C) of images (N, 3, H, W) in [0, 1]."""
        return self.aggregator.embed(images)

    def track(self, fmaps: torch.Tensor, queries: torch.Tensor, iters: int | None = None) -> TrackOutput:
        """Track queries (B, N, 2), (x, y) in input pixels of frame 0, through fmaps (B, S, F, h, w)."""
        return self.track_head.track(fmaps, queries, iters)

    def check_segmentable(self) -> None:
        """The head reads `head.embed_dim`-channel features of an img_size square input; raise if this
        config can't."""
        cfg = self.cfg
        if cfg.img_size != cfg.head.img_size or cfg.dpt.features != cfg.head.embed_dim:
            raise VggtsError(
                f"model {cfg.name!r} cannot segment: the head needs {cfg.head.embed_dim}-channel features "
                f"of a {cfg.head.img_size}px input, the backbone gives {cfg.dpt.features} at {cfg.img_size}px"
            )

    def segment_pairs(
        self,
        images: torch.Tensor,
        src_masks: torch.Tensor,
        target_hw: tuple[int, int] | torch.Tensor | None = None,
    ) -> PairOutput:
        """images (B, 2, 3, img, img) in [0, 1]: [source, target] pairs, each through the backbone as one
        window; src_masks (B, img, img) bool. See `segment_features`."""
        return self.segment_features(self.features(images).float(), src_masks, target_hw)

    def segment_features(
        self,
        fmaps: torch.Tensor,
        src_masks: torch.Tensor,
        target_hw: tuple[int, int] | torch.Tensor | None = None,
        src_points: torch.Tensor | None = None,
    ) -> PairOutput:
        """fmaps (B, 2, C, h, w): [source, target] backbone features; src_masks (B, img, img) bool.

        The source is frame 0 (the tracker's query frame). K-Means points of each source mask (or the given
        `src_points` (B, N, 2)) are tracked into the target (last iterate, clipped to the target's top-left
        `target_hw` = (h, w) region — one for all pairs, or (B, 2) per pair; default the whole input: the
        padding of a letterboxed frame is not image), then the head predicts the target's logits.
        """
        if src_points is None:
            src_points = self.head.source_points(src_masks)
        tracked = self.track(fmaps, src_points).coords[-1][:, 1].float()
        size = self.cfg.img_size
        hw = (size, size) if target_hw is None else target_hw
        limits = torch.as_tensor(hw, device=tracked.device).expand(len(tracked), 2)
        # (x, y) clipped to [0, w - 1] × [0, h - 1] of each pair's target.
        tar_points = torch.minimum(tracked.clamp(min=0), (limits.flip(-1)[:, None, :] - 1).to(tracked))
        out = self.head.segment(fmaps[:, 0], fmaps[:, 1], src_masks, tar_points, src_points)
        return PairOutput(logits=out.logits.float(), presence=out.presence.float())
