"""Small building blocks shared by the model files."""

from __future__ import annotations

import torch
from torch import nn

# The normalisation VGGT's aggregator applies to [0, 1] images (ImageNet statistics).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Mlp(nn.Module):
    """Two-layer perceptron fc1 -> GELU -> fc2 (keys `fc1.*`, `fc2.*`). x: (..., in) -> (..., out)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int | None = None, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim, bias=bias)
        self.act = nn.GELU()  # exact (erf) GELU, as the official weights were trained with
        self.fc2 = nn.Linear(hidden_dim, out_dim or in_dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel scale of a residual branch (key `gamma`). x: (..., dim)."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of (B, C, H, W) maps (keys `weight`, `bias`)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]
