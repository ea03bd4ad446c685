"""2D rotary position embedding (RoPE) for the aggregator's attention.

Each head's channels are split in two halves: the first is rotated by the token's patch row, the second by
its patch column. Within a half, channel j is paired with channel j + half/2 ("rotate-half" pairing) and
turned by the angle position * base^(-2j / half).
"""

from __future__ import annotations

import torch


def grid_positions(
    grid_h: int, grid_w: int, num_special: int, device: torch.device | None = None
) -> torch.Tensor:
    """Integer (row, col) positions of one frame's tokens: `num_special` tokens at (0, 0), then the patch grid
    row-major at (row + 1, col + 1), so that no patch shares the special tokens' position.

    Returns (num_special + grid_h * grid_w, 2) int64.
    """
    rows = torch.arange(1, grid_h + 1, device=device).repeat_interleave(grid_w)
    cols = torch.arange(1, grid_w + 1, device=device).repeat(grid_h)
    patches = torch.stack([rows, cols], dim=-1)
    return torch.cat([patches.new_zeros(num_special, 2), patches])


def rope_tables(positions: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine tables for `apply_rope`.

    positions: (..., N, 2) integer (row, col). Returns cos, sin: (..., N, head_dim) float32, laid out as
    [row angles, row angles, col angles, col angles] with head_dim / 4 frequencies each.
    """
    if head_dim % 4:
        raise ValueError(f"2D RoPE needs a head dim divisible by 4, got {head_dim}")
    half = head_dim // 2
    inv_freq = 1.0 / base ** (torch.arange(0, half, 2, device=positions.device, dtype=torch.float32) / half)
    angles = positions.float()[..., None] * inv_freq  # (..., N, 2, half / 2)
    angles = torch.cat([angles, angles], dim=-1).flatten(-2)  # (..., N, head_dim)
    return angles.cos(), angles.sin()


def _rotate_half_pairs(x: torch.Tensor) -> torch.Tensor:
    """Within each of the two halves [a, b] of the last dim, map to [-b, a]. x: (..., head_dim)."""
    a, b = x.unflatten(-1, (2, 2, -1)).unbind(-2)  # each (..., axis, head_dim / 4)
    return torch.stack([-b, a], dim=-2).flatten(-3)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys x: (B, heads, N, head_dim) with tables (N, head_dim) from `rope_tables`."""
    return x * cos.to(x.dtype) + _rotate_half_pairs(x) * sin.to(x.dtype)
