"""Mask losses of the Union Segmentation Head (SAM's, as VGGT-S trains with): 20 · focal + dice."""

from __future__ import annotations

import torch
import torch.nn.functional as F

FOCAL_WEIGHT = 20.0


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, alpha: float | None = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Sigmoid focal loss of logits (B, H, W) against target (B, H, W) in {0, 1} -> (B,), the mean over
    pixels: BCE · (1 − p_t)^γ, weighted α on object pixels and 1 − α on background (no weighting when α
    is None)."""
    target = target.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    prob = logits.sigmoid()
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = bce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = loss * (alpha * target + (1 - alpha) * (1 - target))
    return loss.flatten(1).mean(1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft dice loss of logits (B, H, W) against target (B, H, W) in {0, 1} -> (B,):
    1 − (2 Σ p·g + 1) / (Σ p + Σ g + 1); the +1 makes an empty target with an empty prediction cost 0."""
    prob = logits.sigmoid().flatten(1)
    target = target.to(logits.dtype).flatten(1)
    return 1 - (2 * (prob * target).sum(1) + 1) / (prob.sum(1) + target.sum(1) + 1)


def mask_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float | None = 0.25) -> torch.Tensor:
    """20 · focal (α = `alpha`) + dice of logits (B, H, W) against target (B, H, W) in {0, 1}, mean over the
    batch -> ()."""
    return (FOCAL_WEIGHT * focal_loss(logits, target, alpha) + dice_loss(logits, target)).mean()
