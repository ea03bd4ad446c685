"""VGGT's iterative point tracker (`track_head.tracker.*`), a CoTracker-style refiner.

Each iteration builds one token per (track, frame) from the flow so far, a local correlation window
around the current estimate and the track's feature vector; an update transformer alternating time
attention and space attention (through learned virtual tracks) predicts coordinate and feature deltas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .configs import TrackerConfig
from .layers import Mlp


@dataclass
class TrackOutput:
    """Tracker results. coords: one (B, S, N, 2) per iteration, (x, y) in input pixels, frame 0 = the
    queries; vis, conf: (B, S, N) probabilities after the last iteration; *_logit: the same before sigmoid."""

    coords: list[torch.Tensor]
    vis: torch.Tensor
    conf: torch.Tensor
    vis_logit: torch.Tensor
    conf_logit: torch.Tensor


def bilinear_sample(maps: torch.Tensor, xy: torch.Tensor, padding_mode: str) -> torch.Tensor:
    """Sample maps (B, C, H, W) at pixel coordinates xy (B, h, w, 2) -> (B, C, h, w).

    Pixel centres sit at integer coordinates (align_corners=True)."""
    h, w = maps.shape[-2:]
    scale = xy.new_tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)])
    grid = (xy * scale - 1).to(maps.dtype)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def sincos_1d(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """Sine then cosine of pos (...) at dim/2 geometric frequencies 10000^(-k/(dim/2)), in float64.
    Returns (..., dim) float32."""
    omega = torch.arange(dim // 2, dtype=torch.float64, device=pos.device) / (dim / 2.0)
    angles = pos.double()[..., None] * (1.0 / 10000**omega)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).float()


def location_embedding(xy: torch.Tensor, dim: int, hw: tuple[int, int]) -> torch.Tensor:
    """The 2-D sin-cos embedding of an h x w grid (x half first, then y), sampled bilinearly with border
    padding at xy (..., 2) in grid pixels -> (..., dim).

    The official code builds the whole grid table and samples it; each half depends on one axis only,
    so evaluating the table at the two neighbouring grid lines per axis and interpolating is the same."""
    halves = []
    for coord, size in zip(xy.unbind(-1), (hw[1], hw[0]), strict=True):
        coord = coord.clamp(0, size - 1)
        lo = coord.floor()
        t = (coord - lo)[..., None]
        hi = (lo + 1).clamp(max=size - 1)
        halves.append((1 - t) * sincos_1d(lo, dim // 2) + t * sincos_1d(hi, dim // 2))
    return torch.cat(halves, dim=-1)


def flow_embedding(flow: torch.Tensor, channels: int, max_scale: float) -> torch.Tensor:
    """Embed flow (..., 2) in feature pixels -> (..., 2·channels + 4).

    Per axis (x, then y): `channels` values interleaving sin (even) and cos (odd) at the *linear*
    frequencies k·2000/channels, k = 0..channels/2-1; then flow / max_scale, twice."""
    freqs = torch.arange(0, channels, 2, dtype=torch.float32, device=flow.device) * (1000.0 / channels)
    parts = []
    for coord in flow.unbind(-1):
        angles = coord[..., None] * freqs
        parts.append(torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2))
    scaled = flow / max_scale
    return torch.cat([*parts, scaled, scaled], dim=-1)


class MultiheadAttention(nn.Module):
    """Attention with nn.MultiheadAttention's parameter layout (packed q, k, v rows in `in_proj_weight`
    [3·dim, dim], `in_proj_bias`, `out_proj`), computed with scaled_dot_product_attention.

    x: (B, L, dim) queries, context: (B, M, dim) keys and values -> (B, L, dim)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        dim = x.shape[-1]
        w_q, w_kv = self.in_proj_weight.split([dim, 2 * dim])
        b_q, b_kv = self.in_proj_bias.split([dim, 2 * dim])
        q = F.linear(x, w_q, b_q)
        k, v = F.linear(context, w_kv, b_kv).chunk(2, dim=-1)
        q, k, v = (t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).flatten(-2))


class AttnBlock(nn.Module):
    """Self-attention block. x: (B, L, dim) -> (B, L, dim).

    Unlike a usual pre-norm block, the official one replaces x by norm1(x) before the residual."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = MultiheadAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x)
        x = x + self.attn(x, x)
        return x + self.mlp(self.norm2(x))


class CrossAttnBlock(nn.Module):
    """Cross-attention block. x: (B, L, dim) attends to context (B, M, dim) -> (B, L, dim).

    As in AttnBlock, x is replaced by norm1(x) before the residual."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.norm_context = nn.LayerNorm(dim, eps=1e-5)
        self.cross_attn = MultiheadAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x)
        x = x + self.cross_attn(x, self.norm_context(context))
        return x + self.mlp(self.norm2(x))


class UpdateFormer(nn.Module):
    """Alternating time / space transformer over tokens (B, N, S, input_dim) -> (B, N, S, output_dim).

    Space attention goes through `num_virtual_tracks` learned tokens per frame, so its cost is linear in
    the number of tracks."""

    def __init__(self, cfg: TrackerConfig, input_dim: int, output_dim: int) -> None:
        super().__init__()
        dim, heads, ratio = cfg.hidden_size, cfg.num_heads, cfg.mlp_ratio
        self.input_norm = nn.LayerNorm(input_dim, eps=1e-5)
        self.input_transform = nn.Linear(input_dim, dim)
        self.virual_tracks = nn.Parameter(torch.randn(1, cfg.num_virtual_tracks, 1, dim))  # checkpoint typo
        self.time_blocks = nn.ModuleList([AttnBlock(dim, heads, ratio) for _ in range(cfg.depth)])
        self.space_virtual2point_blocks = nn.ModuleList(
            [CrossAttnBlock(dim, heads, ratio) for _ in range(cfg.depth)]
        )
        self.space_virtual_blocks = nn.ModuleList([AttnBlock(dim, heads, ratio) for _ in range(cfg.depth)])
        self.space_point2virtual_blocks = nn.ModuleList(
            [CrossAttnBlock(dim, heads, ratio) for _ in range(cfg.depth)]
        )
        self.output_norm = nn.LayerNorm(dim, eps=1e-5)
        self.flow_head = nn.Linear(dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        init = self.input_transform(self.input_norm(x))
        B, N, S, D = init.shape
        tokens = torch.cat([init, self.virual_tracks.expand(B, -1, S, -1)], dim=1)
        for time_blk, v2p, virt, p2v in zip(
            self.time_blocks,
            self.space_virtual2point_blocks,
            self.space_virtual_blocks,
            self.space_point2virtual_blocks,
            strict=True,
        ):
            tokens = time_blk(tokens.flatten(0, 1)).unflatten(0, (B, -1))  # attend over frames
            space = tokens.transpose(1, 2).flatten(0, 1)  # (B·S, N + V, D)
            points, virtual = space[:, :N], space[:, N:]
            virtual = virt(v2p(virtual, points))
            points = p2v(points, virtual)
            tokens = torch.cat([points, virtual], dim=1).unflatten(0, (B, S)).transpose(1, 2)
        return self.flow_head(self.output_norm(tokens[:, :N] + init))


class Tracker(nn.Module):
    """Track query points of frame 0 through all frames of dense feature maps."""

    def __init__(self, cfg: TrackerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.latent_dim
        self.token_dim = 3 * c + 4  # flow embedding (c + 4), correlation feature (c), track feature (c)
        window = (2 * cfg.corr_radius + 1) ** 2
        self.fmap_norm = nn.LayerNorm(c, eps=1e-5)
        self.corr_mlp = Mlp(cfg.corr_levels * window, cfg.hidden_size, c)
        self.query_ref_token = nn.Parameter(torch.randn(1, 2, self.token_dim))
        self.updateformer = UpdateFormer(cfg, self.token_dim, c + 2)
        self.ffeat_norm = nn.GroupNorm(1, c, eps=1e-5)
        self.ffeat_updater = nn.Sequential(nn.Linear(c, c), nn.GELU())
        self.vis_predictor = nn.Sequential(nn.Linear(c, 1))
        self.conf_predictor = nn.Sequential(nn.Linear(c, 1))
        # Window offsets added to (x, y): sample a·(2r+1) + b sits at (x + a - r, y + b - r), x slow.
        offsets = torch.arange(-cfg.corr_radius, cfg.corr_radius + 1, dtype=torch.float32)
        window_xy = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), dim=-1).reshape(1, 1, -1, 2)
        self.register_buffer("window_xy", window_xy, persistent=False)

    def correlation(
        self, pyramid: list[torch.Tensor], feats: torch.Tensor, coords: torch.Tensor
    ) -> torch.Tensor:
        """Correlation of each track feature with its frame's maps on a window around the estimate.

        pyramid: per level (B·S, C, h_l, w_l); feats: (B, S, N, C); coords: (B, S, N, 2) in level-0 pixels.
        Returns (B, S, N, levels · window). Sampling the maps and then taking the dot product equals
        sampling the full correlation volume (bilinear sampling is linear) without building it."""
        B, S, N, C = feats.shape
        feats = feats.reshape(B * S, N, C)
        centres = coords.reshape(B * S, N, 1, 2)
        levels = []
        for i, maps in enumerate(pyramid):
            window = bilinear_sample(maps, centres / 2**i + self.window_xy, padding_mode="zeros")
            levels.append(torch.einsum("mnc,mcnk->mnk", feats, window))
        return (torch.cat(levels, dim=-1) / math.sqrt(C)).reshape(B, S, N, -1)

    def forward(self, fmaps: torch.Tensor, queries: torch.Tensor, iters: int | None = None) -> TrackOutput:
        """fmaps: (B, S, C, h, w) feature maps at 1/stride of the input; queries: (B, N, 2) (x, y) in input
        pixels of frame 0; iters: refinement iterations (default cfg.iters)."""
        cfg = self.cfg
        iters = cfg.iters if iters is None else iters
        B, S, C, h, w = fmaps.shape
        N = queries.shape[1]
        fmaps = self.fmap_norm(fmaps.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3)
        pyramid = [fmaps.flatten(0, 1)]
        for _ in range(cfg.corr_levels - 1):
            pyramid.append(F.avg_pool2d(pyramid[-1], kernel_size=2, stride=2))

        query_xy = queries / cfg.stride  # feature pixels
        query_feats = bilinear_sample(fmaps[:, 0], query_xy[:, :, None], padding_mode="border")[..., 0]
        feats = query_feats.transpose(1, 2)[:, None].expand(B, S, N, C)
        coords = query_xy[:, None].expand(B, S, N, 2)
        # Constant over iterations: frame 0's coordinates are always the queries.
        loc_embed = location_embedding(query_xy, self.token_dim, (h, w))[:, :, None]  # (B, N, 1, D)
        ref = self.query_ref_token
        ref_token = torch.cat([ref[:, :1], ref[:, 1:].expand(-1, S - 1, -1)], dim=1)[:, None]  # (1, 1, S, D)

        preds = []
        for _ in range(iters):
            coords = coords.detach()  # as in the official training: no gradient through earlier iterates
            corr = self.corr_mlp(self.correlation(pyramid, feats, coords))
            flow = flow_embedding(coords - coords[:, :1], C // 2, cfg.max_scale)
            tokens = torch.cat([flow, corr, feats], dim=-1).transpose(1, 2)  # (B, N, S, D)
            delta = self.updateformer(tokens + loc_embed + ref_token).transpose(1, 2)  # (B, S, N, 2 + C)
            feat_delta = self.ffeat_updater(self.ffeat_norm(delta[..., 2:].reshape(-1, C)))
            feats = feats + feat_delta.reshape(B, S, N, C)
            coords = coords + delta[..., :2]
            coords = torch.cat([query_xy[:, None], coords[:, 1:]], dim=1)
            preds.append(coords * cfg.stride)

        vis_logit = self.vis_predictor(feats)[..., 0]
        conf_logit = self.conf_predictor(feats)[..., 0]
        return TrackOutput(preds, vis_logit.sigmoid(), conf_logit.sigmoid(), vis_logit, conf_logit)
