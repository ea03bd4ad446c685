"""Pre-norm transformer block, shared by the DINO trunk and the aggregator's frame / global blocks."""

from __future__ import annotations

import torch
from torch import nn

from vggts_cli.model.attention import Attention
from vggts_cli.model.layers import LayerScale, Mlp


class Block(nn.Module):
    """x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x))). x: (B, N, dim) -> (B, N, dim).

    DINO uses eps 1e-6, no qk-norm, LayerScale init 1.0 and no RoPE; the aggregator uses eps 1e-5 (for the
    block norms and the qk-norms), qk-norm, init 0.01 and passes RoPE tables to `forward`.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        eps: float = 1e-6,
        qk_norm: bool = False,
        init_values: float = 1.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm, norm_eps=eps)
        self.ls1 = LayerScale(dim, init_values)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """x: (B, N, dim); rope: optional (cos, sin) tables (N, head_dim) for queries and keys."""
        x = x + self.ls1(self.attn(self.norm1(x), rope))
        return x + self.ls2(self.mlp(self.norm2(x)))
