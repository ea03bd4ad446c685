"""DINOv2 ViT with register tokens: the aggregator's patch embedding (`aggregator.patch_embed.*`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vggts_cli.model.block import Block
from vggts_cli.model.configs import DinoConfig
from vggts_cli.model.stem import EfficientStem


def check_image_size(height: int, width: int, patch_size: int) -> None:
    """Raise ValueError unless both sides are whole multiples of the patch size."""
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"image height and width must be multiples of the patch size {patch_size}, got {height}x{width}"
        )


def resize_pos_embed(pos_embed: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    """Fit a square position embedding to a (h, w) patch grid.

    pos_embed: (1, 1 + M*M, C), class slot first. Returns (1, 1 + h*w, C), class slot kept, grid row-major.
    The grid is resized by antialiased bicubic interpolation in fp32, as the weights were trained with:
    antialias changes the kernel even when enlarging, and plain bicubic gives visibly different outputs.
    """
    side = math.isqrt(pos_embed.shape[1] - 1)
    if tuple(grid_hw) == (side, side):
        return pos_embed
    dim = pos_embed.shape[-1]
    cls_slot, grid = pos_embed[:, :1].float(), pos_embed[:, 1:].float()
    grid = grid.reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=grid_hw, mode="bicubic", antialias=True, align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat([cls_slot, grid], dim=1).to(pos_embed.dtype)


class PatchEmbed(nn.Module):
    """Non-overlapping patch convolution (key `proj`). (N, 3, H, W) -> (N, H/p * W/p, C), row-major."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(images).flatten(2).transpose(1, 2)


def build_patch_embed(cfg: DinoConfig) -> nn.Module:
    """The configured patch embedding: (N, 3, H, W) -> (N, H/p * W/p, embed_dim), p = cfg.patch_size."""
    if cfg.stem == "patch":
        return PatchEmbed(cfg.patch_size, cfg.embed_dim)
    if cfg.stem == "efficientnet-lite0":
        if cfg.patch_size != EfficientStem.stride:
            raise ValueError(
                f"the efficientnet-lite0 stem needs patch_size {EfficientStem.stride}, got {cfg.patch_size}"
            )
        return EfficientStem(cfg.embed_dim)
    raise ValueError(f"unknown stem {cfg.stem!r}: expected 'patch' or 'efficientnet-lite0'")


class DinoViT(nn.Module):
    """DINOv2 trunk returning its normalised patch tokens.

    Token order: [class, registers, patches]; the position embedding is added to the class token and the
    patches only (registers are inserted after it). `mask_token` is in the checkpoint but unused here.
    """

    def __init__(self, cfg: DinoConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim, grid = cfg.embed_dim, cfg.img_size // cfg.patch_size
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 1e-6)
        self.pos_embed = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, 1 + grid * grid, dim), std=0.02))
        self.register_tokens = nn.Parameter(torch.randn(1, cfg.num_register_tokens, dim) * 1e-6)
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.patch_embed = build_patch_embed(cfg)
        self.blocks = nn.ModuleList(
            Block(dim, cfg.num_heads, cfg.mlp_ratio, eps=1e-6, init_values=1.0) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, H, W), ImageNet-normalised, H and W multiples of the patch size.

        Returns (N, h*w, C) patch tokens after the final norm, h = H / patch, w = W / patch.
        """
        n, _, height, width = images.shape
        patch = self.cfg.patch_size
        check_image_size(height, width, patch)
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(n, -1, -1), x], dim=1)
        x = x + resize_pos_embed(self.pos_embed, (height // patch, width // patch))
        x = torch.cat([x[:, :1], self.register_tokens.expand(n, -1, -1), x[:, 1:]], dim=1)
        for block in self.blocks:
            x = block(x)
        # The norm is per token, so normalising only the patch tokens gives the same result.
        return self.norm(x[:, 1 + self.cfg.num_register_tokens :])
