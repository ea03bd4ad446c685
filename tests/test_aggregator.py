"""The aggregator against the official test vectors (shared/testvectors/backbone_small.*)."""

from __future__ import annotations

import pytest
import torch
from vectors import load_vectors, official_shapes

from vggts_cli.model.aggregator import Aggregator
from vggts_cli.model.configs import TESTVECTOR_BACKBONE, VGGT_S_1B
from vggts_cli.model.dino import resize_pos_embed

ATOL = 1e-4  # testvectors/README.md: fp32 rounding of the official code is <= 4.3e-6 here
# bf16 autocast vs fp32 on these vectors measured max |diff| 0.019-0.038 over the 5 layers (values up to
# 7.9, i.e. about one bf16 ulp of the largest values); allow roughly 2.5x that.
BF16_ATOL = 0.1


@pytest.fixture(scope="module")
def model() -> Aggregator:
    state = load_vectors("backbone_small.weights.safetensors", "aggregator.")
    model = Aggregator(TESTVECTOR_BACKBONE.aggregator).eval()
    model.load_state_dict(state, strict=True)
    return model


@pytest.fixture(scope="module")
def images(io: dict[str, torch.Tensor]) -> torch.Tensor:
    return io["in.images_u8"].float() / 255  # (1, 3, 3, 140, 182)


@pytest.fixture(scope="module")
def outputs(model: Aggregator, images: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        out, _ = model(images)
    return out


def test_pos_embed_interpolation(model: Aggregator, io: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        got = resize_pos_embed(model.patch_embed.pos_embed, (10, 13))
    torch.testing.assert_close(got, io["out.dino.pos_embed_interpolated"], atol=ATOL, rtol=0)


def test_dino_patch_tokens(model: Aggregator, images: torch.Tensor, io: dict[str, torch.Tensor]) -> None:
    normalised = (images - model.image_mean) / model.image_std
    with torch.no_grad():
        got = model.patch_embed(normalised.flatten(0, 1))
    torch.testing.assert_close(got, io["out.dino.x_norm_patchtokens"], atol=ATOL, rtol=0)


def test_aggregator_outputs(model: Aggregator, images: torch.Tensor, io: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        out, patch_start_idx = model(images)
    assert patch_start_idx == int(io["out.patch_start_idx"]) == 5
    assert len(out) == 5
    for i, got in enumerate(out):
        torch.testing.assert_close(got, io[f"out.aggregator.out.{i}"], atol=ATOL, rtol=0)


def test_keep_returns_only_requested_layers(
    model: Aggregator, images: torch.Tensor, outputs: list[torch.Tensor]
) -> None:
    with torch.no_grad():
        out, _ = model(images, keep=[1, 3])
    assert [o is None for o in out] == [True, False, True, False, True]
    assert torch.equal(out[1], outputs[1]) and torch.equal(out[3], outputs[3])
    with pytest.raises(ValueError, match="layer indices"):
        model(images, keep=[5])


def test_global_attention_mixes_frames(
    model: Aggregator, images: torch.Tensor, outputs: list[torch.Tensor]
) -> None:
    changed = images.clone()
    changed[:, 2] = 1.0 - changed[:, 2]
    with torch.no_grad():
        out, _ = model(changed)
    dim = model.cfg.embed_dim
    # Frame block 0 sees frame 1 alone: unchanged. Global block 0 attends to frame 2: changed.
    assert torch.equal(out[0][:, 1, :, :dim], outputs[0][:, 1, :, :dim])
    assert (out[0][:, 1, :, dim:] - outputs[0][:, 1, :, dim:]).abs().max() > 1e-3
    # From then on the frame stream carries the mixed tokens too.
    assert (out[1][:, 1, :, :dim] - outputs[1][:, 1, :, :dim]).abs().max() > 1e-3


def test_deterministic(model: Aggregator, images: torch.Tensor, outputs: list[torch.Tensor]) -> None:
    with torch.no_grad():
        again, _ = model(images)
    assert all(torch.equal(a, b) for a, b in zip(again, outputs, strict=True))


def test_bf16_autocast_close_to_fp32(
    model: Aggregator, images: torch.Tensor, outputs: list[torch.Tensor]
) -> None:
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = model(images)
    diffs = [(a.float() - b).abs().max().item() for a, b in zip(out, outputs, strict=True)]
    assert max(diffs) < BF16_ATOL, diffs
    assert min(diffs) > 1e-4, "autocast did not change the numbers: bf16 was not used"


@pytest.mark.parametrize("shape", [(1, 2, 3, 141, 182), (1, 2, 3, 140, 180), (2, 3, 140, 182)])
def test_rejects_bad_shapes(model: Aggregator, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="multiples of the patch size 14|must be \\(B, S, 3, H, W\\)"):
        model(torch.rand(shape))


def test_1b_config_matches_official_keys() -> None:
    expected = official_shapes("vggt-1b.keys.tsv", "aggregator.")
    with torch.device("meta"):  # shapes only: no 0.9 B values allocated
        model = Aggregator(VGGT_S_1B.aggregator)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(expected) == 1210
    assert got == expected
