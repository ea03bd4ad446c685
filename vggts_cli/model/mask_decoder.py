"""Mask decoder of the Union Segmentation Head (keys `mask_decoder.*`, official §2.5, §2.7).

SAM's decoder with a single mask token and no IoU / object-score heads: the two views' feature maps
go side by side through the two-way transformer, the target half of the refined image is upscaled 4×,
and the mask token's hypernetwork vector dotted with it gives the logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vggts_cli.model.layers import LayerNorm2d
from vggts_cli.model.two_way import ReluMlp, TwoWayTransformer


@dataclass
class DecoderOutput:
    """low_res_logits (B, 1, 2·img, 2·img) unclamped; queries (B, Nq, C) and keys (B, h·2h, C) of the
    transformer."""

    low_res_logits: torch.Tensor
    queries: torch.Tensor
    keys: torch.Tensor


class MaskDecoder(nn.Module):
    """Args: dim: token width (128); transformer: the two-way transformer (registered first)."""

    def __init__(self, dim: int, transformer: TwoWayTransformer) -> None:
        super().__init__()
        self.transformer = transformer
        self.mask_tokens = nn.Embedding(1, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList([ReluMlp(dim, dim, dim // 8, num_layers=3)])

    def forward(
        self,
        feat_map: torch.Tensor,
        ca_pe: torch.Tensor,
        sa_pe: torch.Tensor,
        sparse: torch.Tensor,
        src_mask_emb: torch.Tensor,
        tar_mask_emb: torch.Tensor | None,
    ) -> DecoderOutput:
        """feat_map (B, 2, C, h, h) (source, target), ca_pe (1, C, h, 2h), sa_pe (1, C·r, t, 2t),
        sparse (B, 3N, C), mask embeddings (B, C, h, h) -> DecoderOutput."""
        b, _, c, h, _ = feat_map.shape
        tokens = torch.cat([self.mask_tokens.weight.expand(b, -1, -1), sparse], dim=1)
        image = torch.cat([feat_map[:, 0], feat_map[:, 1]], dim=-1)
        queries, keys = self.transformer(image, ca_pe, sa_pe, tokens, src_mask_emb, tar_mask_emb)

        # Only the target half of the refined image is decoded; the source half is dropped.
        target = keys.transpose(1, 2).reshape(b, c, h, 2 * h)[..., h:]
        upscaled = self.output_upscaling(target)  # (B, C/8, 4h, 4h)
        hyper = self.output_hypernetworks_mlps[0](queries[:, 0])[:, None]  # (B, 1, C/8)
        _, c8, hh, ww = upscaled.shape
        logits = (hyper @ upscaled.reshape(b, c8, hh * ww)).reshape(b, 1, hh, ww)
        return DecoderOutput(low_res_logits=logits, queries=queries, keys=keys)
