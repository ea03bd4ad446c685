"""Prompt encoder of the Union Segmentation Head (keys `prompt_encoder.*`, official §2.3–2.4).

Sparse prompts: random-Fourier encodings of the source and target points plus the VGGT features at the
source points. Dense prompts: the source mask (and the fed-back target logits) through `mask_downscaling`.
Also the two dense position encodings of the image tokens: full-resolution for cross-attention (`ca`),
bottleneck-resolution for the image self-attention (`sa`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vggts_cli.model.layers import LayerNorm2d


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of 2-D coordinates (SAM): c in [0, 1]² -> [sin(2π(2c-1)G), cos(2π(2c-1)G)].

    G (2, num_feats) is a persistent buffer, random at construction: it must come from the checkpoint.
    """

    def __init__(self, num_feats: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_feats))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """coords (..., 2) (x, y) in [0, 1] -> (..., 2 * num_feats), sin block first."""
        proj = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        proj = 2 * math.pi * proj
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)

    def grid(self, size: int) -> torch.Tensor:
        """Encoding of the cell centres of a size×size grid -> (2 * num_feats, size, size)."""
        device = self.positional_encoding_gaussian_matrix.device
        centres = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size
        xy = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), dim=-1)
        return self.encode(xy).permute(2, 0, 1)

    def points(self, points: torch.Tensor, img_size: int) -> torch.Tensor:
        """Pixel points (B, N, 2) (x, y) in an img_size square -> (B, N, 2 * num_feats)."""
        return self.encode(points.float() / img_size)


class PromptEncoder(nn.Module):
    """Sparse and dense prompts and the dense position encodings.

    Args:
        embed_dim: token width (128).
        img_size: model input side; points are in its pixels.
        ratio: bottleneck ratio r (the head's feature grid is r · sa_tokens); bottleneck width embed_dim · r.
        sa_tokens: bottleneck grid side per view.
        mask_chans: hidden channels of `mask_downscaling` (16).
    """

    def __init__(
        self, embed_dim: int, img_size: int, ratio: int, sa_tokens: int, mask_chans: int = 16
    ) -> None:
        super().__init__()
        self.img_size = img_size
        self.feature_hw = ratio * sa_tokens
        self.mask_input_size = 2 * self.feature_hw
        self.sa_tokens = sa_tokens
        self.ca_pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.sa_pe_layer = PositionEmbeddingRandom(embed_dim * ratio // 2)
        # One learned vector per view (source / target), added to the dense encodings of that view.
        self.ca_src_img_pe = nn.Embedding(1, embed_dim)
        self.ca_tar_img_pe = nn.Embedding(1, embed_dim)
        self.sa_src_img_pe = nn.Embedding(1, embed_dim * ratio)
        self.sa_tar_img_pe = nn.Embedding(1, embed_dim * ratio)
        # One learned vector per point set.
        self.src_point_pe = nn.Embedding(1, embed_dim)
        self.tar_point_pe = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_chans),
            nn.GELU(),
            nn.Conv2d(mask_chans, embed_dim, kernel_size=1),
        )

    def dense_ca_pe(self) -> torch.Tensor:
        """Cross-attention encoding of the side-by-side image tokens -> (1, embed_dim, h, 2h), h = r · t."""
        return self._two_views(self.ca_pe_layer.grid(self.feature_hw), self.ca_src_img_pe, self.ca_tar_img_pe)

    def dense_sa_pe(self) -> torch.Tensor:
        """Self-attention encoding of the bottleneck tokens -> (1, C·r, t, 2t), t = sa_tokens."""
        return self._two_views(self.sa_pe_layer.grid(self.sa_tokens), self.sa_src_img_pe, self.sa_tar_img_pe)

    @staticmethod
    def _two_views(base: torch.Tensor, src: nn.Embedding, tar: nn.Embedding) -> torch.Tensor:
        """base (C, s, s) -> [base + src | base + tar] along width, (1, C, s, 2s)."""
        base = base[None]
        return torch.cat([base + src.weight.view(1, -1, 1, 1), base + tar.weight.view(1, -1, 1, 1)], dim=-1)

    def embed_mask(self, mask_logits: torch.Tensor) -> torch.Tensor:
        """Mask logits (B, 1, m, m), m = 2h -> dense embedding (B, embed_dim, h, h)."""
        return self.mask_downscaling(mask_logits)

    def forward(
        self, src_points: torch.Tensor, tar_points: torch.Tensor, src_points_feat: torch.Tensor
    ) -> torch.Tensor:
        """Sparse tokens [src point PE (N) | tar point PE (N) | src point features (N)] -> (B, 3N, embed_dim).

        src_points, tar_points: (B, N, 2) (x, y) in img_size pixels (encoded at the pixel centre).
        src_points_feat: (B, N, embed_dim), **modified in place**: `src_point_pe` is added to it, as in the
        official code. Reusing one tensor over refinement passes therefore accumulates the embedding
        (pass t sees +(t + 1)·src_point_pe); the published weights were trained with exactly that.
        """
        src_pe = self.ca_pe_layer.points(src_points + 0.5, self.img_size) + self.src_point_pe.weight.view(
            1, 1, -1
        )
        tar_pe = self.ca_pe_layer.points(tar_points + 0.5, self.img_size) + self.tar_point_pe.weight.view(
            1, 1, -1
        )
        src_points_feat += self.src_point_pe.weight.view(1, 1, -1)
        return torch.cat([src_pe, tar_pe, src_points_feat], dim=1)
