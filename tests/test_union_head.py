"""The Union Segmentation Head against the official VGGT-S test vectors (shared/testvectors, head_small)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from official_crops import (
    drop_outliers,
    exo_target_points,
    frame_points,
    mask_zoom_box,
    points_into_crop,
    recover_crop_points,
    rescale_points,
    zoom_source,
)
from vectors import load_vectors, official_keys, vector_path

from vggts_cli.geometry import SquareCrop, crop_around_points, recover_square_crop, resize_logits
from vggts_cli.model.configs import HeadConfig
from vggts_cli.model.points import kmeans_points, sample_point_features
from vggts_cli.model.union_head import HeadPass, UnionHead, presence_score

SMALL = HeadConfig(img_size=40, sa_tokens=10)
TOL = 1e-4  # README: absolute 1e-4 on embeddings and logits for an independent fp32 implementation
MASKS = ("crescent", "ellipse_hole", "four_pixels")


def close(actual: torch.Tensor | np.ndarray, expected: torch.Tensor | np.ndarray, tol: float = TOL) -> None:
    actual, expected = torch.as_tensor(np.asarray(actual)), torch.as_tensor(np.asarray(expected))
    assert actual.shape == expected.shape
    diff = (actual.double() - expected.double()).abs().max().item()
    assert diff <= tol, f"max |diff| {diff:.3g} > {tol:g}"


def same_binary(mask: torch.Tensor, expected: torch.Tensor, logits: torch.Tensor) -> None:
    """Binary masks equal, except pixels whose logit is within TOL of 0."""
    assert mask.shape == expected.shape == logits.shape
    differ = mask.bool() != expected.bool()
    assert not (differ & (logits.abs() >= TOL)).any()


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    return load_vectors("head_small.io.safetensors")


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(vector_path("head_small.json").read_text())


@pytest.fixture(scope="module")
def head(io) -> UnionHead:
    model = UnionHead(SMALL).eval()
    model.load_state_dict(load_vectors("head_small.weights.safetensors"), strict=True)
    return model


def unpack_mask(io: dict[str, torch.Tensor], name: str) -> np.ndarray:
    bits = io[f"pointprep.kmeans.{name}.mask_packbits"].numpy()
    return np.unpackbits(bits)[: 518 * 518].reshape(518, 518)


def run_passes(
    head: UnionHead, io: dict[str, torch.Tensor], points_feat: torch.Tensor
) -> tuple[list[HeadPass], list[torch.Tensor]]:
    """The official two-pass inference on the vectors' inputs, one point-feature tensor for both passes.

    Returns the passes and copies of `points_feat` as it entered each pass.
    """
    results, entered, feedback = [], [], None
    with torch.no_grad():
        for _ in range(2):
            entered.append(points_feat.clone())
            result = head(
                io["in.feat_map"],
                io["out.src_points"],
                io["in.tar_points"],
                io["in.src_mask"],
                feedback,
                points_feat,
            )
            results.append(result)
            feedback = result.low_res_logits
    return results, entered


@pytest.fixture(scope="module")
def passes(head, io) -> tuple[list[HeadPass], list[torch.Tensor], torch.Tensor]:
    """Both passes, the point features as they entered each pass, and the tensor after both."""
    points_feat = io["out.src_points_feat"].clone()
    results, entered = run_passes(head, io, points_feat)
    return results, entered, points_feat


# ----------------------------------------------------------------------------------------------- keys


def test_published_config_has_the_official_keys_and_shapes():
    expected = [(key, shape) for key, shape, _ in official_keys("vggt-s-head.keys.tsv")]
    with torch.device("meta"):  # shapes only; the real r = 7 head is 38 M values
        model = UnionHead(HeadConfig())
    actual = [(key, tuple(t.shape)) for key, t in model.state_dict().items()]
    assert len(actual) == 153
    assert actual == expected


def test_small_weights_load_strictly(head):
    weights = load_vectors("head_small.weights.safetensors")
    assert set(head.state_dict()) == set(weights)
    for key, value in head.state_dict().items():
        assert torch.equal(value, weights[key]), key
    buffers = {name for name, _ in head.named_buffers()}
    assert buffers == {
        "prompt_encoder.ca_pe_layer.positional_encoding_gaussian_matrix",
        "prompt_encoder.sa_pe_layer.positional_encoding_gaussian_matrix",
    }


def test_config_must_tile_the_feature_grid():
    with pytest.raises(ValueError):
        UnionHead(HeadConfig(img_size=40, sa_tokens=7))  # 20 is not 2 · 7
    with pytest.raises(ValueError):
        UnionHead(HeadConfig(img_size=40, pool=3, sa_tokens=2))  # 3 does not divide 20


def test_a_pooled_head_sees_the_target_features_averaged(io):
    """pool 2: the same weights on a grid of 10 × 10 cells, each the mean of 2 × 2 backbone features. A
    target pattern that averages to zero in every cell is invisible to it; the official head sees it."""
    weights = load_vectors("head_small.weights.safetensors")
    pooled = UnionHead(HeadConfig(img_size=40, pool=2, sa_tokens=5)).eval()
    pooled.load_state_dict(weights, strict=True)  # ratio 2 either way: the same weight shapes
    official = UnionHead(SMALL).eval()
    official.load_state_dict(weights, strict=True)
    feat, mask, tar_points = io["in.feat_map"], io["in.src_mask"].bool(), io["in.tar_points"]
    checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(10, 10)  # (20, 20), zero mean per cell
    shifted = feat[:, 1] + 0.5 * checker
    with torch.no_grad():
        passes = pooled.run_passes(feat[:, 0], feat[:, 1], mask, tar_points)
        assert passes[-1].shape == (len(feat), 40, 40)
        close(pooled.run_passes(feat[:, 0], shifted, mask, tar_points)[-1], passes[-1])
        before = official.run_passes(feat[:, 0], feat[:, 1], mask, tar_points)[-1]
        after = official.run_passes(feat[:, 0], shifted, mask, tar_points)[-1]
    assert (before - after).abs().max() > 100 * TOL


# --------------------------------------------------------------------------------------------- points


def test_kmeans_points_of_the_input_masks(io):
    for mask, expected in zip(io["in.src_mask"].numpy(), io["out.src_points"].numpy(), strict=True):
        assert np.array_equal(kmeans_points(mask, 5), expected)


@pytest.mark.parametrize("name", MASKS)
@pytest.mark.parametrize("n_points", [5, 50])
def test_kmeans_points_of_realistic_masks(io, name, n_points):
    points = kmeans_points(unpack_mask(io, name), n_points)
    assert points.dtype == np.float32
    assert np.array_equal(points, io[f"pointprep.kmeans.{name}.points{n_points}"].numpy())


def test_kmeans_points_of_an_empty_mask(io):
    points = kmeans_points(np.zeros((518, 518), np.uint8), 5)
    assert np.array_equal(points, io["pointprep.kmeans.empty.points5"].numpy())


def test_target_chain(io, manifest):
    tracked = io["pointprep.tarchain.points50_518"].numpy()
    window = manifest["pointprep"]["tarchain"]["meta"]
    frame_h, frame_w = window["ori_h"], window["ori_w"]

    kept = drop_outliers(frame_points(tracked, 518, frame_h, frame_w), 10)
    close(kept, io["pointprep.tarchain.kept40_960"])
    crop = crop_around_points(kept, window["crop_size"], frame_h, frame_w)
    assert (crop.x1, crop.y1, crop.x2, crop.y2, crop.side) == (
        window["x1"],
        window["y1"],
        window["x2"],
        window["y2"],
        window["crop_size"],
    )
    close(points_into_crop(kept, crop, 518), io["pointprep.tarchain.crop_points_518"])

    tar_points, chain_crop = exo_target_points(tracked, 518, frame_h, frame_w)
    assert chain_crop == crop
    close(tar_points, io["pointprep.tarchain.tar_points"])


def test_point_features(io):
    features = sample_point_features(io["in.feat_map"][:, 0], io["out.src_points"], 40)
    close(features, io["out.src_points_feat"])


# ----------------------------------------------------------------------------------------------- head


def test_dense_position_encodings(head, io):
    with torch.no_grad():
        close(head.prompt_encoder.dense_ca_pe(), io["out.dense_ca_pe"])
        close(head.prompt_encoder.dense_sa_pe(), io["out.dense_sa_pe"])


@pytest.mark.parametrize("t", [0, 1])
def test_each_pass_matches(passes, io, t):
    results, entered, _ = passes
    result, ref = results[t], f"out.pass{t}."
    close(entered[t], io[ref + "src_points_feat_in"])
    close(result.sparse_embeddings, io[ref + "sparse_embeddings"])
    close(result.queries, io[ref + "transformer_queries"])
    close(result.low_res_unclamped, io[ref + "low_res_logits_unclamped"])
    close(result.low_res_logits, io[ref + "low_res_logits_clamped"])
    close(result.pred_logits, io[ref + "pred_logits"])
    close(result.src_mask_embedding, io["out.pass0.src_mask_embedding"])
    if t == 0:
        assert result.tar_mask_embedding is None
        close(result.keys, io["out.pass0.transformer_keys"])
    else:
        close(result.tar_mask_embedding, io["out.pass1.tar_mask_embedding"])
    assert result.low_res_logits.abs().max() <= 32


def test_passes_accumulate_the_source_point_embedding(passes, head, io):
    _, entered, after = passes
    pe = head.prompt_encoder.src_point_pe.weight.detach()
    close(entered[1], io["out.src_points_feat"] + pe)
    close(after, io["out.src_points_feat"] + 2 * pe)


def test_evaluation_outputs(head, io, manifest):
    points_feat = io["out.src_points_feat"].clone()
    pred = run_passes(head, io, points_feat)[0][-1].pred_logits
    close(points_feat, io["out.eval.src_points_feat_after"])
    same_binary(pred > 0, io["out.eval.pred_binary"], pred)

    meta = manifest["recovery_meta"][0]
    crop = SquareCrop(
        x1=meta["x1"], y1=meta["y1"], side=meta["crop_size"], frame_h=meta["ori_h"], frame_w=meta["ori_w"]
    )
    assert (crop.x2, crop.y2) == (meta["x2"], meta["y2"])
    recovered = recover_square_crop(pred[0, 0], crop)
    same_binary(recovered > 0, io["out.eval.recovered_mask.0"], recovered)
    close(recover_crop_points(io["in.tar_points"][0], crop, meta["W"]), io["out.eval.recovered_points.0"])

    side = manifest["config"]["pipeline"]["tar_square"]
    resized = resize_logits(pred[1, 0], (side, side))
    same_binary(resized > 0, io["out.eval.recovered_mask.1"], resized)
    close(rescale_points(io["in.tar_points"][1], 40, 704), io["out.eval.recovered_points.1"])


def test_segment_is_the_official_inference_and_deterministic(head, io):
    feat, mask, tar_points = io["in.feat_map"], io["in.src_mask"].bool(), io["in.tar_points"]
    feat_before = feat.clone()
    first = head.segment(feat[:, 0], feat[:, 1], mask, tar_points)
    second = head.segment(feat[:, 0], feat[:, 1], mask, tar_points)
    assert torch.equal(feat, feat_before)  # the in-place accumulation stays on segment's own tensor
    close(first.logits, io["out.pass1.pred_logits"][:, 0])
    assert torch.equal(first.logits, second.logits)
    assert torch.equal(first.presence, second.presence)
    assert torch.equal(first.presence, presence_score(first.logits))


# ------------------------------------------------------------------------------------------- presence


def test_presence_score():
    background = torch.full((2, 40, 40), -5.0)
    assert (presence_score(background) < 0.5).all()
    obj = background.clone()
    obj[0, 10:20, 10:20] = 6.0  # an object in sample 0 only
    score = presence_score(obj)
    assert score.shape == (2,)
    assert score[0] > 0.99 and score[1] < 0.01
    # A single confident pixel on 518² is below the 0.1 % (268 pixel) support: not enough.
    speck = torch.full((1, 518, 518), -5.0)
    speck[0, 100, 100] = 20.0
    assert presence_score(speck) < 0.5
    # Monotonic in the logits.
    assert (presence_score(obj + 1.0) > score).all()


# ---------------------------------------------------------------------------------------------- crops


def test_zoom_source_crops_half_the_frame_around_the_object():
    mask = np.zeros((518, 518), np.uint8)
    mask[300:320, 200:250] = 1  # bbox centre (224, 309) with integer halves
    image = np.random.default_rng(0).integers(0, 256, (518, 518, 3), dtype=np.uint8)
    x1, y1, x2, y2 = mask_zoom_box(mask, 2)
    assert (x2 - x1, y2 - y1) == (259, 259)
    assert (x1, y1) == (224 - 129, 309 - 129)
    zoomed_image, zoomed_mask, box = zoom_source(image, mask, 2)
    assert box == (x1, y1, x2, y2)
    assert zoomed_image.shape == image.shape and zoomed_mask.shape == mask.shape
    assert zoomed_mask.sum() > 3.5 * mask.sum()  # 2× zoom: about 4× the area


def test_zoom_box_stays_inside_and_covers_large_objects():
    mask = np.zeros((518, 518), np.uint8)
    mask[5:15, 500:510] = 1  # near the top-right corner
    assert mask_zoom_box(mask, 2) == (518 - 259, 0, 518, 259)
    mask = np.zeros((518, 518), np.uint8)
    mask[10:400, 20:30] = 1  # taller than half the frame: side = bbox height 390
    # Official integer halves: centre row 204, top 204 - 195 = 9, so the last object row (399) falls out.
    assert mask_zoom_box(mask, 2) == (0, 9, 390, 399)


def test_zoom_source_of_an_empty_mask_returns_the_input():
    mask = np.zeros((518, 518), np.uint8)
    image = np.zeros((518, 518, 3), np.uint8)
    zoomed_image, zoomed_mask, box = zoom_source(image, mask, 2)
    assert zoomed_image is image and zoomed_mask is mask and box == (0, 0, 518, 518)


def test_recover_square_crop_fills_outside_with_background():
    crop = SquareCrop(x1=10, y1=4, side=20, frame_h=30, frame_w=50)
    logits = torch.full((40, 40), 3.0)
    restored = recover_square_crop(logits, crop)
    assert restored.shape == (30, 50)
    assert (restored[4:24, 10:30] == 3.0).all()
    assert (restored > 0).sum() == 20 * 20
    points = recover_crop_points(torch.tensor([[0.0, 0.0], [40.0, 20.0]]), crop, 40)
    assert torch.equal(points, torch.tensor([[10.0, 4.0], [30.0, 14.0]]))
