"""Model sizes as dataclasses: one code path, configs differ.

`vggt-s-1b` is the published model (facebook/VGGT-1B + zbbhhh/VGGT-S). The small sizes exist for CPU
use and tests; `testvector-backbone` reproduces the official backbone test-vector build in
`shared/testvectors/` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DinoConfig:
    """DINOv2-style ViT patch embedding inside the aggregator (`aggregator.patch_embed.*`)."""

    img_size: int = 518  # pos_embed is built for img_size / patch_size cells per side
    patch_size: int = 14
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    # "patch": one patch_size-strided conv; "efficientnet-lite0": an ImageNet-initialisable conv trunk
    # (stride 16, `stem.EfficientStem`).
    stem: str = "patch"


@dataclass(frozen=True)
class AggregatorConfig:
    """Alternating frame / global attention (`aggregator.*`)."""

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    rope_freq: float = 100.0
    dino: DinoConfig = field(default_factory=DinoConfig)


@dataclass(frozen=True)
class DPTConfig:
    """The track head's DPT feature extractor (`track_head.feature_extractor.*`), feature-only."""

    dim_in: int = 2048  # 2 * aggregator embed_dim
    patch_size: int = 14
    features: int = 128
    out_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    layer_idx: tuple[int, int, int, int] = (4, 11, 17, 23)
    down_ratio: int = 2


@dataclass(frozen=True)
class TrackerConfig:
    """The iterative tracker (`track_head.tracker.*`)."""

    latent_dim: int = 128  # = DPT features
    hidden_size: int = 384  # updateformer width
    iters: int = 4
    stride: int = 2
    corr_levels: int = 7
    corr_radius: int = 4
    depth: int = 6
    num_heads: int = 8
    num_virtual_tracks: int = 64
    mlp_ratio: float = 4.0
    max_scale: int = 518


@dataclass(frozen=True)
class HeadConfig:
    """The Union Segmentation Head (`Predictor`): image size, bottleneck grid, decoder sizes."""

    img_size: int = 518  # model input side; the backbone's feature grid is img_size // 2
    # The backbone's feature grid is average-pooled by this before the head (1: the official head): the
    # head's image tokens, and so its cost, shrink by pool². Its grid is then feature_hw = ratio * sa_tokens.
    pool: int = 1
    sa_tokens: int = 37  # bottleneck grid side per view
    embed_dim: int = 128
    depth: int = 2
    num_heads: int = 8
    n_points: int = 5
    passes: int = 2  # refinement: pass 0 without target mask, then feedback passes

    @property
    def backbone_hw(self) -> int:
        """Side of the backbone's feature grid, which the head is given."""
        return self.img_size // 2

    @property
    def feature_hw(self) -> int:
        """Side of the head's own grid: the backbone's, pooled."""
        return self.backbone_hw // self.pool

    @property
    def ratio(self) -> int:
        return self.feature_hw // self.sa_tokens


@dataclass(frozen=True)
class ModelConfig:
    """A whole VGGT-S: backbone (aggregator + track head) and segmentation head."""

    name: str
    img_size: int
    aggregator: AggregatorConfig
    dpt: DPTConfig
    tracker: TrackerConfig
    head: HeadConfig


VGGT_S_1B = ModelConfig(
    name="vggt-s-1b",
    img_size=518,
    aggregator=AggregatorConfig(),
    dpt=DPTConfig(),
    tracker=TrackerConfig(),
    head=HeadConfig(),
)


def _narrow_aggregator(depth: int) -> AggregatorConfig:
    """The 64-wide, 2-head aggregator (over a 2-block DINO) of the small builds below."""
    return AggregatorConfig(
        embed_dim=64, depth=depth, num_heads=2, dino=DinoConfig(embed_dim=64, depth=2, num_heads=2)
    )


# The official backbone test-vector build (shared/testvectors/backbone_small.json).
TESTVECTOR_BACKBONE = ModelConfig(
    name="testvector-backbone",
    img_size=140,
    aggregator=_narrow_aggregator(depth=5),
    dpt=DPTConfig(dim_in=128, features=32, out_channels=(16, 32, 64, 64), layer_idx=(0, 1, 3, 4)),
    tracker=TrackerConfig(latent_dim=32, hidden_size=32),
    head=HeadConfig(img_size=40, sa_tokens=10),
)

# A small model of the same architecture for CPU work and tests: 224 px input, 112 px feature grid.
VGGT_S_TINY = ModelConfig(
    name="vggt-s-tiny",
    img_size=224,
    aggregator=_narrow_aggregator(depth=4),
    dpt=DPTConfig(dim_in=128, features=128, out_channels=(32, 64, 128, 128), layer_idx=(0, 1, 2, 3)),
    tracker=TrackerConfig(latent_dim=128, hidden_size=64, depth=2),
    head=HeadConfig(img_size=224, sa_tokens=16, depth=1),
)

# The shipped default (`vggts train`): the same architecture sized for a 2-core CPU — 112 px input, an
# ImageNet-initialisable EfficientNet-Lite0 stem instead of the patch conv (7×7 tokens of 16 px),
# 32-channel features, a 56 px feature grid fused at 8×8 per view (ratio 7, as the 1B head).
VGGT_S_LITE = ModelConfig(
    name="vggt-s-lite",
    img_size=112,
    aggregator=AggregatorConfig(
        embed_dim=96,
        depth=4,
        num_heads=4,
        dino=DinoConfig(
            img_size=112, patch_size=16, embed_dim=96, depth=2, num_heads=4, stem="efficientnet-lite0"
        ),
    ),
    dpt=DPTConfig(
        dim_in=192, patch_size=16, features=32, out_channels=(32, 48, 64, 96), layer_idx=(0, 1, 2, 3)
    ),
    # Inference runs 1 tracker iterate and 1 head pass; training runs 3 and 2 (`TrainConfig`) with a loss on
    # each, and the extra ones were measured to add nothing here (`weights/RECIPE.md`) while costing a
    # third of the per-frame time.
    tracker=TrackerConfig(
        latent_dim=32,
        hidden_size=64,
        iters=1,
        corr_levels=3,
        corr_radius=3,
        depth=2,
        num_heads=4,
        num_virtual_tracks=16,
        max_scale=112,
    ),
    head=HeadConfig(img_size=112, pool=2, sa_tokens=4, embed_dim=32, depth=1, num_heads=4, passes=1),
)

CONFIGS: dict[str, ModelConfig] = {
    c.name: c for c in (VGGT_S_1B, VGGT_S_TINY, VGGT_S_LITE, TESTVECTOR_BACKBONE)
}
