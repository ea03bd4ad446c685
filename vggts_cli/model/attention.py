"""Multi-head self-attention with optional qk-norm and 2D RoPE (keys `qkv`, `q_norm`, `k_norm`, `proj`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vggts_cli.model.rope import apply_rope


class Attention(nn.Module):
    """Self-attention over tokens x: (B, N, dim) -> (B, N, dim).

    qk-norm is a LayerNorm over each head's channels (with weight and bias), applied before RoPE. The
    softmax runs in `scaled_dot_product_attention`, which picks flash / memory-efficient kernels on GPU.
    """

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False, norm_eps: float = 1e-5) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.LayerNorm(self.head_dim, eps=norm_eps) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim, eps=norm_eps) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """x: (B, N, dim); rope: optional (cos, sin) tables of shape (N, head_dim) from `rope_tables`."""
        b, n, dim = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        # Under autocast the norms return fp32 while v is low precision; SDPA wants one dtype.
        x = F.scaled_dot_product_attention(q.to(v.dtype), k.to(v.dtype), v)
        return self.proj(x.transpose(1, 2).reshape(b, n, dim))
