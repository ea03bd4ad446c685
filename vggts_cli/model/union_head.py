"""The Union Segmentation Head of VGGT-S = the official `Predictor` (`prompt_encoder.*`, `mask_decoder.*`).

Given the VGGT feature maps of a source and a target view, the source mask and a few target points, it
predicts the object's logits in the target. `forward` is one official pass, `segment` the whole official
inference: K-Means source points, their features, `cfg.passes` passes each fed the previous clamped
low-res logits, the last pass's prediction. Numbers follow the official fp32 code, quirks included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vggts_cli.model.configs import HeadConfig
from vggts_cli.model.mask_decoder import MaskDecoder
from vggts_cli.model.points import kmeans_points, sample_point_features
from vggts_cli.model.prompt_encoder import PromptEncoder
from vggts_cli.model.two_way import TwoWayTransformer

SOURCE_MASK_LOGIT = 30.0  # the binary source mask enters as ±30 logits
LOGIT_CLAMP = 32.0  # the fed-back low-res logits are clamped to ±32
PRESENCE_TOP_FRACTION = 1e-3  # presence_score averages the top 0.1 % of the logits


@dataclass
class HeadPass:
    """One pass of the head (img = model input side, h = img // 2 // pool: the head's feature grid).

    pred_logits (B, 1, img, img): bilinear from the *unclamped* low-res logits — the prediction.
    low_res_logits (B, 1, 4h, 4h): clamped to ±32 — what the next pass is fed.
    low_res_unclamped: the same before the clamp.
    sparse_embeddings (B, 3N, C), src_mask_embedding / tar_mask_embedding (B, C, h, h) (the latter None
    without feedback), queries (B, 1 + 3N, C) and keys (B, h·2h, C): intermediates, for checks.
    """

    pred_logits: torch.Tensor
    low_res_logits: torch.Tensor
    low_res_unclamped: torch.Tensor
    sparse_embeddings: torch.Tensor
    src_mask_embedding: torch.Tensor
    tar_mask_embedding: torch.Tensor | None
    queries: torch.Tensor
    keys: torch.Tensor


@dataclass
class HeadOutput:
    """logits (B, img, img) of the object in the target input; presence (B,) in [0, 1]."""

    logits: torch.Tensor
    presence: torch.Tensor


def presence_score(logits: torch.Tensor) -> torch.Tensor:
    """Parameter-free presence of the object: logits (B, H, W) -> (B,) in [0, 1].

    sigmoid of the mean of the top 0.1 % logits (at least one pixel): the confidence of the most confident
    object-sized speck of foreground. It is > 0.5 exactly when those pixels are, on average, predicted as
    object, and < 0.5 for an all-negative map (nothing would be drawn). The official head has no presence
    output, so this is derived from the logits alone and needs no weights.
    """
    flat = logits.flatten(1)
    k = max(1, math.ceil(flat.shape[1] * PRESENCE_TOP_FRACTION))
    return torch.sigmoid(flat.topk(k, dim=1).values.mean(dim=1))


class UnionHead(nn.Module):
    """The official `Predictor(img_size, sa_tokens)`: embed_dim 128, `cfg.depth` blocks, 8 heads.

    Requires img_size // 2 // pool = ratio · sa_tokens exactly (518: 259 = 7 · 37; test vectors 40: 20 =
    2 · 10; vggt-s-lite 112: 56 // 2 = 7 · 4). With `cfg.pool` > 1 (not official) the backbone's features
    are average-pooled to that grid and the source mask area-resized to twice it.
    """

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__()
        if cfg.pool < 1 or cfg.backbone_hw % cfg.pool:
            raise ValueError(f"pool {cfg.pool} does not divide the feature grid {cfg.backbone_hw}")
        if cfg.ratio < 1 or cfg.feature_hw != cfg.ratio * cfg.sa_tokens:
            raise ValueError(
                f"the head's grid {cfg.feature_hw} is not a multiple of sa_tokens {cfg.sa_tokens}"
            )
        if cfg.passes < 1:
            raise ValueError(f"the head needs at least one pass, got {cfg.passes}")
        self.cfg = cfg
        self.prompt_encoder = PromptEncoder(cfg.embed_dim, cfg.img_size, cfg.ratio, cfg.sa_tokens)
        transformer = TwoWayTransformer(cfg.depth, cfg.embed_dim, cfg.num_heads, cfg.ratio)
        self.mask_decoder = MaskDecoder(cfg.embed_dim, transformer)

    def forward(
        self,
        feat_map: torch.Tensor,
        src_points: torch.Tensor,
        tar_points: torch.Tensor,
        src_mask: torch.Tensor,
        tar_mask_logits: torch.Tensor | None,
        src_points_feat: torch.Tensor,
    ) -> HeadPass:
        """One official pass.

        feat_map (B, 2, 128, h, h): source then target VGGT features (pooled to the head's grid).
        src_points, tar_points (B, N, 2): (x, y) in input pixels. src_mask (B, img, img): {0, 1} (or
        bool). tar_mask_logits (B, 1, 4h, 4h): the previous pass's `low_res_logits`, or None.
        src_points_feat (B, N, 128): the features at the source points — **`src_point_pe` is added to it
        in place** (official behaviour; pass the same tensor to every pass of one inference).
        """
        pe = self.prompt_encoder
        src_logits = torch.where(src_mask[:, None].float() > 0.5, SOURCE_MASK_LOGIT, -SOURCE_MASK_LOGIT)
        size = (pe.mask_input_size, pe.mask_input_size)
        if src_logits.shape[-2:] != size:  # a pooled head: the mask's area share per cell, as ±30 logits
            src_logits = F.interpolate(src_logits, size=size, mode="area")
        src_mask_emb = pe.embed_mask(src_logits)
        tar_mask_emb = None
        if tar_mask_logits is not None:
            # Antialiased here, unlike the plain bilinear upsampling of the prediction below.
            resized = F.interpolate(
                tar_mask_logits.float(), size=size, mode="bilinear", align_corners=False, antialias=True
            )
            tar_mask_emb = pe.embed_mask(resized)
        sparse = pe(src_points, tar_points, src_points_feat)

        out = self.mask_decoder(
            feat_map, pe.dense_ca_pe(), pe.dense_sa_pe(), sparse, src_mask_emb, tar_mask_emb
        )
        low_res = out.low_res_logits
        pred = F.interpolate(low_res, size=src_mask.shape[-2:], mode="bilinear", align_corners=False)
        return HeadPass(
            pred_logits=pred,
            low_res_logits=low_res.clamp(-LOGIT_CLAMP, LOGIT_CLAMP),
            low_res_unclamped=low_res,
            sparse_embeddings=sparse,
            src_mask_embedding=src_mask_emb,
            tar_mask_embedding=tar_mask_emb,
            queries=out.queries,
            keys=out.keys,
        )

    def source_points(self, src_mask: torch.Tensor) -> torch.Tensor:
        """K-Means source points of each mask (B, img, img) -> (B, n_points, 2) float32 on its device."""
        masks = src_mask.detach().cpu().numpy()
        points = np.stack([kmeans_points(m, self.cfg.n_points) for m in masks])
        return torch.from_numpy(points).to(src_mask.device)

    def run_passes(
        self,
        src_feat: torch.Tensor,
        tar_feat: torch.Tensor,
        src_mask: torch.Tensor,
        tar_points: torch.Tensor,
        src_points: torch.Tensor | None = None,
        passes: int | None = None,
    ) -> list[torch.Tensor]:
        """Every refinement pass's prediction: src_feat, tar_feat (B, C, img/2, img/2) backbone features;
        src_mask (B, img, img) bool; tar_points (B, N, 2) (x, y) in target input pixels -> `passes`
        (default `cfg.passes`) logits (B, img, img).

        `src_points` (B, N, 2) are the K-Means points of src_mask when the caller already has them (it
        tracked them), else computed here. Source points and their features (sampled at the backbone's
        resolution, before any `cfg.pool`) are computed once; pass t (0-based) gets the previous pass's
        clamped low-res logits (none for t = 0, detached as in SAM-style iterative training) and sees the
        point features + (t + 1)·src_point_pe.
        """
        if src_points is None:
            src_points = self.source_points(src_mask)
        points_feat = sample_point_features(src_feat, src_points, self.cfg.img_size)
        if self.cfg.pool > 1:
            src_feat, tar_feat = (F.avg_pool2d(f, self.cfg.pool) for f in (src_feat, tar_feat))
        feat_map = torch.stack([src_feat, tar_feat], dim=1)
        tar_points = tar_points.float()
        feedback = None
        preds = []
        for _ in range(self.cfg.passes if passes is None else passes):
            result = self(feat_map, src_points, tar_points, src_mask, feedback, points_feat)
            feedback = result.low_res_logits.detach()
            preds.append(result.pred_logits[:, 0])
        return preds

    @torch.no_grad()
    def segment(self, *inputs: torch.Tensor | None) -> HeadOutput:
        """The official inference -> HeadOutput: `run_passes(src_feat, tar_feat, src_mask, tar_points[,
        src_points])`, its last pass."""
        logits = self.run_passes(*inputs)[-1]  # type: ignore[arg-type]
        return HeadOutput(logits=logits, presence=presence_score(logits))
