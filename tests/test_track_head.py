"""The track head (DPT feature extractor + tracker) against the official test vectors
(shared/testvectors/backbone_small.*)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from vectors import load_vectors, official_shapes

from vggts_cli.model.configs import TESTVECTOR_BACKBONE, VGGT_S_1B
from vggts_cli.model.track_head import TrackHead
from vggts_cli.model.tracker import TrackOutput, location_embedding, sincos_1d

# testvectors/README.md: suggested tolerances for an independent fp32 implementation.
FEATURE_ATOL = 1e-4
COORD_ATOL = (1e-4, 2e-4, 1e-3, 2e-3)  # px, per iteration: the iterations amplify rounding
LOGIT_ATOL = 5e-3
PROB_ATOL = 2e-3
IMAGE_HW = (140, 182)


@pytest.fixture(scope="module")
def head() -> TrackHead:
    state = load_vectors("backbone_small.weights.safetensors", "track_head.")
    head = TrackHead(TESTVECTOR_BACKBONE.dpt, TESTVECTOR_BACKBONE.tracker).eval()
    head.load_state_dict(state, strict=True)
    return head


@pytest.fixture(scope="module")
def tokens(io: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return [io[f"out.aggregator.out.{i}"] for i in range(5)]


@pytest.fixture(scope="module")
def tracked(head: TrackHead, io: dict[str, torch.Tensor]) -> TrackOutput:
    with torch.no_grad():
        return head.track(io["out.track_head.feature_maps"], io["in.query_points"])


def test_feature_maps(head: TrackHead, tokens: list[torch.Tensor], io: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        got = head.features(tokens, IMAGE_HW, int(io["out.patch_start_idx"]))
    assert got.shape == (1, 3, 32, 70, 91)
    torch.testing.assert_close(got, io["out.track_head.feature_maps"], atol=FEATURE_ATOL, rtol=0)


def test_features_read_only_configured_layers_and_chunk_frames(
    head: TrackHead, tokens: list[torch.Tensor], io: dict[str, torch.Tensor]
) -> None:
    # layer_idx is (0, 1, 3, 4): layer 2 is never read; frames are independent, so chunking is exact.
    sparse = [t if i in head.feature_extractor.cfg.layer_idx else None for i, t in enumerate(tokens)]
    with torch.no_grad():
        got = head.feature_extractor(sparse, IMAGE_HW, 5, frames_chunk=2)
    torch.testing.assert_close(got, io["out.track_head.feature_maps"], atol=FEATURE_ATOL, rtol=0)


def test_tracker_coords_per_iteration(tracked: TrackOutput, io: dict[str, torch.Tensor]) -> None:
    assert len(tracked.coords) == 4
    for i, (got, atol) in enumerate(zip(tracked.coords, COORD_ATOL, strict=True)):
        torch.testing.assert_close(
            got, io[f"out.tracker.coords.{i}"], atol=atol, rtol=0, msg=f"iteration {i}"
        )


def test_tracker_vis_conf(tracked: TrackOutput, io: dict[str, torch.Tensor]) -> None:
    for name in ("vis_logit", "conf_logit"):
        torch.testing.assert_close(getattr(tracked, name), io[f"out.tracker.{name}"], atol=LOGIT_ATOL, rtol=0)
    for name in ("vis", "conf"):
        torch.testing.assert_close(getattr(tracked, name), io[f"out.tracker.{name}"], atol=PROB_ATOL, rtol=0)
    assert torch.equal(tracked.vis, tracked.vis_logit.sigmoid())


def test_frame0_is_the_query(tracked: TrackOutput, io: dict[str, torch.Tensor]) -> None:
    queries = io["in.query_points"]
    for coords in tracked.coords:
        assert torch.equal(coords[:, 0], queries)
        assert not torch.equal(coords[:, 1:], queries[:, None].expand_as(coords[:, 1:]))


def test_iters_and_determinism(head: TrackHead, tracked: TrackOutput, io: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        again = head.track(io["out.track_head.feature_maps"], io["in.query_points"])
        short = head.track(io["out.track_head.feature_maps"], io["in.query_points"], iters=2)
    assert all(torch.equal(a, b) for a, b in zip(again.coords, tracked.coords, strict=True))
    assert torch.equal(again.vis_logit, tracked.vis_logit) and torch.equal(again.conf, tracked.conf)
    assert len(short.coords) == 2
    assert all(torch.equal(a, b) for a, b in zip(short.coords, tracked.coords[:2], strict=True))


def test_features_then_tracker(
    head: TrackHead, tokens: list[torch.Tensor], io: dict[str, torch.Tensor]
) -> None:
    with torch.no_grad():
        out = head.track(head.features(tokens, IMAGE_HW, 5), io["in.query_points"])
    torch.testing.assert_close(out.coords[-1], io["out.tracker.coords.3"], atol=COORD_ATOL[-1], rtol=0)


def test_location_embedding_equals_sampling_the_full_table() -> None:
    # The official code builds the (dim, h, w) table and grid-samples it (align_corners, border).
    dim, h, w = 388, 9, 13
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    table = torch.cat([sincos_1d(xs, dim // 2), sincos_1d(ys, dim // 2)], dim=-1).permute(2, 0, 1)
    xy = torch.tensor([[0.0, 0.0], [12.0, 8.0], [3.25, 7.5], [-2.0, 4.4], [15.0, 9.5], [11.9, 0.1]])
    grid = xy / torch.tensor([(w - 1) / 2, (h - 1) / 2]) - 1
    expected = F.grid_sample(table[None], grid[None, :, None], align_corners=True, padding_mode="border")
    got = location_embedding(xy, dim, (h, w))
    torch.testing.assert_close(got, expected[0, :, :, 0].T, atol=1e-6, rtol=0)


def test_1b_config_matches_official_keys() -> None:
    expected = official_shapes("vggt-1b.keys.tsv", "track_head.")
    with torch.device("meta"):  # shapes only: no 66 M values allocated
        head = TrackHead(VGGT_S_1B.dpt, VGGT_S_1B.tracker)
    got = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert len(expected) == 394
    assert got == expected
