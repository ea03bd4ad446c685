"""The DPT feature extractor of VGGT's track head (`track_head.feature_extractor.*`), feature-only.

Four aggregator layers are turned into a four-scale pyramid (x4, x2, x1, x0.5 of the patch grid),
fused coarse to fine by RefineNet-style blocks, and resized to half the input resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configs import DPTConfig


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with align_corners=True, the only resize the head uses. x: (B, C, h, w)."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class ResidualConvUnit(nn.Module):
    """ReLU -> conv1 -> ReLU -> conv2, plus a skip from ReLU(x). x: (B, C, h, w) -> same.

    The official unit applies an in-place ReLU to its input, so the skip carries ReLU(x), not x.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return x + self.conv2(F.relu(self.conv1(x)))


class FusionBlock(nn.Module):
    """Fuse a coarser path with a lateral map, then resize. (B, C, h, w) -> (B, C, *size).

    `resConfUnit1` (the lateral branch) exists only when the block has a second input.
    """

    def __init__(self, features: int, has_residual: bool = True) -> None:
        super().__init__()
        if has_residual:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], lateral: torch.Tensor | None = None
    ) -> torch.Tensor:
        if lateral is not None:
            x = x + self.resConfUnit1(lateral)
        x = _resize(self.resConfUnit2(x), size)
        return self.out_conv(x)


class Scratch(nn.Module):
    """Per-scale 3x3 projections to `features` channels (`layerN_rn`) and the fusion path."""

    def __init__(self, out_channels: tuple[int, int, int, int], features: int) -> None:
        super().__init__()
        self.layer1_rn = nn.Conv2d(out_channels[0], features, 3, padding=1, bias=False)
        self.layer2_rn = nn.Conv2d(out_channels[1], features, 3, padding=1, bias=False)
        self.layer3_rn = nn.Conv2d(out_channels[2], features, 3, padding=1, bias=False)
        self.layer4_rn = nn.Conv2d(out_channels[3], features, 3, padding=1, bias=False)
        self.refinenet1 = FusionBlock(features)
        self.refinenet2 = FusionBlock(features)
        self.refinenet3 = FusionBlock(features)
        self.refinenet4 = FusionBlock(features, has_residual=False)
        self.output_conv1 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """feats: four maps, finest first -> (B, features, 2·h1, 2·w1) where h1, w1 is the finest size."""
        l1, l2, l3, l4 = (
            self.layer1_rn(feats[0]),
            self.layer2_rn(feats[1]),
            self.layer3_rn(feats[2]),
            self.layer4_rn(feats[3]),
        )
        x = self.refinenet4(l4, l3.shape[-2:])
        x = self.refinenet3(x, l2.shape[-2:], l3)
        x = self.refinenet2(x, l1.shape[-2:], l2)
        x = self.refinenet1(x, (2 * l1.shape[-2], 2 * l1.shape[-1]), l1)
        return self.output_conv1(x)


class DPTFeatures(nn.Module):
    """Aggregator tokens -> dense per-frame feature maps at 1/down_ratio of the input size."""

    def __init__(self, cfg: DPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.norm = nn.LayerNorm(cfg.dim_in, eps=1e-5)
        self.projects = nn.ModuleList([nn.Conv2d(cfg.dim_in, c, 1) for c in cfg.out_channels])
        c = cfg.out_channels
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(c[0], c[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(c[1], c[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(c[3], c[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = Scratch(cfg.out_channels, cfg.features)

    def forward(
        self,
        tokens: list[torch.Tensor | None],
        image_hw: tuple[int, int],
        patch_start_idx: int,
        frames_chunk: int = 8,
    ) -> torch.Tensor:
        """tokens: aggregator outputs, each (B, S, P, dim_in) (only `cfg.layer_idx` entries are read;
        others may be None); image_hw: input (H, W). Returns (B, S, features, H', W') with
        H' = (H // patch) · patch / down_ratio. Frames are independent, so they run in chunks."""
        layers = [tokens[i] for i in self.cfg.layer_idx]
        num_frames = layers[0].shape[1]
        chunks = [
            self._forward_frames([t[:, s : s + frames_chunk] for t in layers], image_hw, patch_start_idx)
            for s in range(0, num_frames, frames_chunk)
        ]
        return torch.cat(chunks, dim=1)

    def _forward_frames(
        self, layers: list[torch.Tensor], image_hw: tuple[int, int], patch_start_idx: int
    ) -> torch.Tensor:
        """layers: four (B, S, P, dim_in) -> (B, S, features, H', W')."""
        B, S = layers[0].shape[:2]
        p, r = self.cfg.patch_size, self.cfg.down_ratio
        gh, gw = image_hw[0] // p, image_hw[1] // p
        feats = []
        for x, project, resize in zip(layers, self.projects, self.resize_layers, strict=True):
            x = self.norm(x[:, :, patch_start_idx:].reshape(B * S, gh * gw, -1))
            x = x.transpose(1, 2).reshape(B * S, -1, gh, gw)
            feats.append(resize(project(x)))
        out = _resize(self.scratch(feats), (int(gh * p / r), int(gw * p / r)))
        return out.reshape(B, S, *out.shape[1:])
