"""VGGT aggregator: DINO patch tokens + special tokens, then alternating frame / global attention."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vggts_cli.model.block import Block
from vggts_cli.model.configs import AggregatorConfig
from vggts_cli.model.dino import DinoViT, check_image_size
from vggts_cli.model.layers import IMAGENET_MEAN, IMAGENET_STD
from vggts_cli.model.rope import grid_positions, rope_tables


def _per_frame(token: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    """Special token (1, 2, K, C) -> (batch * frames, K, C): index 0 for the first frame, 1 for the rest."""
    token = torch.cat([token[:, :1], token[:, 1:].expand(-1, frames - 1, -1, -1)], dim=1)
    return token.expand(batch, -1, -1, -1).flatten(0, 1)


class Aggregator(nn.Module):
    """The VGGT backbone trunk (keys as `aggregator.*` without the prefix).

    Per frame the tokens are [camera, registers, patches]; frame blocks attend within a frame
    ((B*S), P tokens), global blocks across all frames of the window (B, S*P tokens). Both use 2D RoPE on
    the per-frame patch positions (no frame index).
    """

    def __init__(self, cfg: AggregatorConfig) -> None:
        super().__init__()
        if cfg.dino.embed_dim != cfg.embed_dim:
            raise ValueError(f"DINO width {cfg.dino.embed_dim} must equal the aggregator's {cfg.embed_dim}")
        self.cfg = cfg
        dim = cfg.embed_dim
        self.patch_start_idx = 1 + cfg.num_register_tokens
        self.patch_embed = DinoViT(cfg.dino)
        self.camera_token = nn.Parameter(torch.randn(1, 2, 1, dim) * 1e-6)
        self.register_token = nn.Parameter(torch.randn(1, 2, cfg.num_register_tokens, dim) * 1e-6)
        self.frame_blocks = nn.ModuleList(self._block() for _ in range(cfg.depth))
        self.global_blocks = nn.ModuleList(self._block() for _ in range(cfg.depth))
        # Constants, not weights: non-persistent so the state dict matches the checkpoint.
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1), persistent=False)

    def _block(self) -> Block:
        cfg = self.cfg
        return Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, eps=1e-5, qk_norm=True, init_values=0.01)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The per-image part: images (N, 3, H, W) in [0, 1] -> patch tokens (N, (H/p)*(W/p), C)."""
        return self.patch_embed((images - self.image_mean[0]) / self.image_std[0])

    def forward(
        self, images: torch.Tensor, keep: Sequence[int] | None = None, patches: torch.Tensor | None = None
    ) -> tuple[list[torch.Tensor | None], int]:
        """images: (B, S, 3, H, W) in [0, 1], H and W multiples of the patch size.

        Returns `depth` per-layer outputs (B, S, P, 2C) = frame-block output ‖ global-block output (the
        residual streams, not normalised), P = patch_start_idx + (H/p)*(W/p), and `patch_start_idx`.
        With `keep`, only those layer indices are filled (the rest are None) and layers after the last
        kept one are not computed. `patches` (B, S, (H/p)*(W/p), C): the images' `embed`, when the caller
        has it (a frame shared by many windows is embedded once).
        """
        if images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(f"images must be (B, S, 3, H, W), got {tuple(images.shape)}")
        batch, frames, _, height, width = images.shape
        patch = self.cfg.dino.patch_size
        check_image_size(height, width, patch)
        depth = self.cfg.depth
        wanted = set(range(depth)) if keep is None else set(keep)
        if not wanted <= set(range(depth)):
            raise ValueError(f"keep must hold layer indices in [0, {depth}), got {sorted(wanted)}")

        patches = self.embed(images.flatten(0, 1)) if patches is None else patches.flatten(0, 1)
        special = [_per_frame(t, batch, frames) for t in (self.camera_token, self.register_token)]
        tokens = torch.cat([*special, patches], dim=1)  # (B*S, P, C)
        _, num_tokens, dim = tokens.shape

        positions = grid_positions(height // patch, width // patch, self.patch_start_idx, images.device)
        cos, sin = rope_tables(positions, dim // self.cfg.num_heads, self.cfg.rope_freq)  # (P, head_dim)
        frame_rope = (cos, sin)
        global_rope = (cos.repeat(frames, 1), sin.repeat(frames, 1))  # same positions in every frame

        outputs: list[torch.Tensor | None] = [None] * depth
        for i in range(max(wanted, default=-1) + 1):
            tokens = self.frame_blocks[i](tokens.view(batch * frames, num_tokens, dim), frame_rope)
            frame_out = tokens.view(batch, frames, num_tokens, dim)
            tokens = self.global_blocks[i](tokens.view(batch, frames * num_tokens, dim), global_rope)
            if i in wanted:
                outputs[i] = torch.cat([frame_out, tokens.view(batch, frames, num_tokens, dim)], dim=-1)
        return outputs, self.patch_start_idx
