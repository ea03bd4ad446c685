"""VGGT's track head (`track_head.*`): DPT feature maps, then the iterative tracker.

VGGT-S uses both halves separately: the feature maps feed its segmentation head, the tracker maps
query points from one view into another, so they are exposed as two methods.
"""

from __future__ import annotations

import torch
from torch import nn

from .configs import DPTConfig, TrackerConfig
from .dpt import DPTFeatures
from .tracker import Tracker, TrackOutput


class TrackHead(nn.Module):
    """Keys `feature_extractor.*` and `tracker.*`, as under `track_head.` in VGGT's `model.pt`."""

    def __init__(self, dpt: DPTConfig, tracker: TrackerConfig) -> None:
        super().__init__()
        self.feature_extractor = DPTFeatures(dpt)
        self.tracker = Tracker(tracker)

    def features(
        self, tokens: list[torch.Tensor | None], image_hw: tuple[int, int], patch_start_idx: int
    ) -> torch.Tensor:
        """Aggregator outputs, each (B, S, P, dim_in) -> feature maps (B, S, features, H/2, W/2)."""
        return self.feature_extractor(tokens, image_hw, patch_start_idx)

    def track(self, fmaps: torch.Tensor, queries: torch.Tensor, iters: int | None = None) -> TrackOutput:
        """Track queries (B, N, 2), (x, y) in input pixels of frame 0, through fmaps (B, S, C, h, w)."""
        return self.tracker(fmaps, queries, iters)
