"""Two-way transformer of the Union Segmentation Head (keys `mask_decoder.transformer.*`, official §2.6).

SAM's two-way transformer over the source and target feature maps placed side by side, with one
addition per block, the *Bottleneck Fusion*: both views are downsampled by a stride-r convolution to a
t×t grid each, attend to each other as 2t² tokens of width C·r, and are upsampled back; that whole
down/up path is one residual branch. Then the SAM steps: token self-attention, token→image attention
and MLP, image→token attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ReluMlp(nn.Module):
    """Linears `layers.{i}`, ReLU between them (not after the last). x: (..., in_dim) -> (..., out_dim)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


class Attention(nn.Module):
    """Multi-head attention with optional narrowing: q/k/v project dim -> int(dim // downsample_rate).

    q: (B, Nq, dim), k and v: (B, Nk, dim) -> (B, Nq, dim).
    """

    def __init__(self, dim: int, num_heads: int, downsample_rate: float = 1) -> None:
        super().__init__()
        internal = int(dim // downsample_rate)
        if internal % num_heads:
            raise ValueError(f"{num_heads} heads do not divide the attention width {internal}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, internal)
        self.k_proj = nn.Linear(dim, internal)
        self.v_proj = nn.Linear(dim, internal)
        self.out_proj = nn.Linear(internal, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, heads, N, C / heads)."""
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = F.scaled_dot_product_attention(
            self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        )
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, -1))


class TwoWayAttentionBlock(nn.Module):
    """Bottleneck Fusion, then SAM's token / image attention steps.

    Args:
        dim: token width (128).
        num_heads: heads of every attention (8).
        ratio: bottleneck ratio r; the fused tokens are C·r wide.
        first: layer 0 — adds the mask embeddings to the image (and makes that the residual base of the
            fusion) and runs the token self-attention without residual or query PE, as SAM's first layer.
    """

    def __init__(self, dim: int, num_heads: int, ratio: int, first: bool) -> None:
        super().__init__()
        # The official block hard-codes 128 (its only embed_dim) where we write dim.
        width = dim * ratio
        self.first = first
        # Bottleneck Fusion (image self-attention); registration order = official key order.
        self.downsampling = nn.Conv2d(dim, width, kernel_size=ratio, stride=ratio)
        self.upsampling = nn.ConvTranspose2d(width, dim, kernel_size=ratio, stride=ratio)
        self.self_attn_img = Attention(width, num_heads, downsample_rate=ratio / 2)
        self.norm0 = nn.LayerNorm(width)
        self.norm_nf = nn.LayerNorm(dim)
        self.img_mlp = ReluMlp(width, 4 * width, width, num_layers=2)
        self.norm_ffn = nn.LayerNorm(width)
        # SAM two-way steps.
        self.self_attn_token = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.token_mlp = ReluMlp(dim, 4 * dim, dim, num_layers=2)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, num_heads)

    def fuse(
        self,
        keys: torch.Tensor,
        hw: int,
        sa_pe: torch.Tensor,
        src_mask_emb: torch.Tensor,
        tar_mask_emb: torch.Tensor | None,
    ) -> torch.Tensor:
        """Bottleneck Fusion of image tokens (B, hw·2hw, C) -> (B, hw·2hw, C); sa_pe (1, 2t², C·r)."""
        b, _, c = keys.shape
        image = keys.transpose(1, 2).reshape(b, c, hw, 2 * hw)
        src, tar = image[..., :hw], image[..., hw:]
        residual = keys
        if self.first:
            src = src + src_mask_emb
            if tar_mask_emb is not None:
                tar = tar + tar_mask_emb
            residual = torch.cat([src, tar], dim=-1).flatten(2).transpose(1, 2)

        # Both views share the convolutions; side by side they attend to each other at t×2t.
        small = torch.cat([self.downsampling(src), self.downsampling(tar)], dim=-1)
        _, width, t, t2 = small.shape
        tokens = small.flatten(2).transpose(1, 2)
        qk = tokens + sa_pe
        tokens = self.norm0(tokens + self.self_attn_img(qk, qk, tokens))
        tokens = self.norm_ffn(tokens + self.img_mlp(tokens))
        small = tokens.transpose(1, 2).reshape(b, width, t, t2)

        up = torch.cat(
            [self.upsampling(small[..., : t2 // 2]), self.upsampling(small[..., t2 // 2 :])], dim=-1
        )
        return self.norm_nf(up.flatten(2).transpose(1, 2) + residual)

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        ca_pe: torch.Tensor,
        sa_pe: torch.Tensor,
        src_mask_emb: torch.Tensor,
        tar_mask_emb: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (B, Nq, C), keys (B, h·2h, C), query_pe like queries, ca_pe like keys (batch 1),
        sa_pe (1, 2t², C·r), mask embeddings (B, C, h, h) -> (queries, keys)."""
        keys = self.fuse(keys, src_mask_emb.shape[-1], sa_pe, src_mask_emb, tar_mask_emb)

        if self.first:
            queries = self.self_attn_token(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn_token(q, q, queries)
        queries = self.norm1(queries)

        q = queries + query_pe
        k = keys + ca_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.token_mlp(queries))

        q = queries + query_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """`depth` TwoWayAttentionBlocks, then a final token→image attention.

    The query PE of every layer is the initial token tensor itself (mask token + sparse prompts), as SAM.
    """

    def __init__(self, depth: int, dim: int, num_heads: int, ratio: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(dim, num_heads, ratio, first=i == 0) for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(dim, num_heads)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(
        self,
        image: torch.Tensor,
        ca_pe: torch.Tensor,
        sa_pe: torch.Tensor,
        tokens: torch.Tensor,
        src_mask_emb: torch.Tensor,
        tar_mask_emb: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """image (B, C, h, 2h) [source | target], ca_pe (1, C, h, 2h), sa_pe (1, C·r, t, 2t),
        tokens (B, Nq, C), mask embeddings (B, C, h, h) -> queries (B, Nq, C), keys (B, h·2h, C)."""
        keys = image.flatten(2).transpose(1, 2)
        ca_pe = ca_pe.flatten(2).transpose(1, 2)
        sa_pe = sa_pe.flatten(2).transpose(1, 2)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, ca_pe, sa_pe, src_mask_emb, tar_mask_emb)
        q = queries + tokens
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, keys + ca_pe, keys))
        return queries, keys
