"""The whole VGGT-S model: official test vectors end to end, and both checkpoint formats."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from models import make_tiny_model
from rich.filesize import decimal
from safetensors.torch import load_file, save_file
from vectors import vector_path

from vggts_cli.errors import VggtsError
from vggts_cli.model.configs import (
    CONFIGS,
    TESTVECTOR_BACKBONE,
    VGGT_S_1B,
    VGGT_S_LITE,
    VGGT_S_TINY,
    ModelConfig,
)
from vggts_cli.model.io import (
    DEFAULT_MODEL,
    FORMAT,
    FORMAT_VERSION,
    config_from_json,
    config_to_json,
    load_backbone,
    load_model,
    load_official,
    save_model,
    shipped_model_path,
)
from vggts_cli.model.vggts import VGGTS

ATOL = 1e-4  # testvectors/README.md, features and logits
COORD_ATOL = (1e-4, 2e-4, 1e-3, 2e-3)  # tracker iterations 0-3, pixels
LOGIT_ATOL, PROB_ATOL = 5e-3, 2e-3
# bf16 autocast vs fp32 on the test-vector features (values up to 6.7): measured max |diff| 0.056, about
# one bf16 ulp of the largest values; allow ~2.5x.
BF16_ATOL = 0.15


@pytest.fixture(scope="module")
def tv_model() -> VGGTS:
    model = VGGTS(TESTVECTOR_BACKBONE).eval()
    load_backbone(model, vector_path("backbone_small.weights.safetensors"))  # strict
    return model


@pytest.fixture(scope="module")
def tv_features(tv_model: VGGTS, io: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode():
        return tv_model.features(io["in.images_u8"].float() / 255)


def test_testvector_features(tv_features: torch.Tensor, io: dict[str, torch.Tensor]) -> None:
    expected = io["out.track_head.feature_maps"]
    assert tv_features.shape == expected.shape == (1, 3, 32, 70, 91)
    torch.testing.assert_close(tv_features, expected, atol=ATOL, rtol=0)


def test_testvector_tracks(tv_model: VGGTS, tv_features: torch.Tensor, io: dict[str, torch.Tensor]) -> None:
    with torch.inference_mode():
        out = tv_model.track(tv_features, io["in.query_points"])
    assert len(out.coords) == 4
    for i, atol in enumerate(COORD_ATOL):
        torch.testing.assert_close(out.coords[i], io[f"out.tracker.coords.{i}"], atol=atol, rtol=0)
    for name, atol in (
        ("vis_logit", LOGIT_ATOL),
        ("conf_logit", LOGIT_ATOL),
        ("vis", PROB_ATOL),
        ("conf", PROB_ATOL),
    ):
        torch.testing.assert_close(getattr(out, name), io[f"out.tracker.{name}"], atol=atol, rtol=0)


def test_features_deterministic(
    tv_model: VGGTS, tv_features: torch.Tensor, io: dict[str, torch.Tensor]
) -> None:
    with torch.inference_mode():
        again = tv_model.features(io["in.images_u8"].float() / 255)
    assert torch.equal(again, tv_features)


def test_bf16_autocast_close_to_fp32(tv_model: VGGTS, tv_features: torch.Tensor, io: dict) -> None:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = tv_model.features(io["in.images_u8"].float() / 255)
    assert bf16.dtype == torch.bfloat16  # autocast really ran in bf16
    diff = (bf16.float() - tv_features).abs().max().item()
    assert 0 < diff < BF16_ATOL


def test_testvector_config_cannot_segment(tv_model: VGGTS) -> None:
    with pytest.raises(VggtsError, match="cannot segment"):
        tv_model.check_segmentable()


# -- checkpoint formats, on VGGT_S_TINY with random values --------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> VGGTS:
    return make_tiny_model(seed=1)


def _official_files(model: VGGTS, folder: Path, backbone: dict | None = None, head: dict | None = None):
    """Write `model` as the official pair: model.pt (plain state dict incl. unused heads) and main_exp.pth
    (a training checkpoint); `backbone` / `head` replace the state dicts written."""
    if backbone is None:
        backbone = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
        backbone["camera_head.trunk.0.norm1.weight"] = torch.ones(8)
        backbone["depth_head.scratch.output_conv2.0.weight"] = torch.zeros(4, 8, 3, 3)
        backbone["point_head.norm.bias"] = torch.zeros(8)
    if head is None:
        head = model.head.state_dict()
    torch.save(backbone, folder / "model.pt")
    # AdamW and MultiStepLR state as the VGGT-S training loop saves them (a few parameters suffice).
    params = [torch.nn.Parameter(torch.zeros(3, 4)), torch.nn.Parameter(torch.zeros(5))]
    optimizer = torch.optim.AdamW(params, lr=5e-5, weight_decay=1e-4)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[8, 11], gamma=0.1)
    assert isinstance(scheduler.state_dict()["milestones"], Counter)
    checkpoint = {"model": head, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    torch.save({**checkpoint, "epoch": 11}, folder / "main_exp.pth")
    return folder / "model.pt", folder / "main_exp.pth"


def _assert_same_weights(a: VGGTS, b: VGGTS) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_official_pair_loads_strictly(tiny: VGGTS, tmp_path: Path) -> None:
    model_pt, main_exp = _official_files(tiny, tmp_path)
    loaded = load_official(model_pt, main_exp, VGGT_S_TINY)
    _assert_same_weights(loaded, tiny)
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())


def _corrupt(state: dict[str, torch.Tensor], how: str) -> tuple[dict[str, torch.Tensor], str]:
    """A copy of `state` with one key removed / one extra key / one wrong shape, and that key."""
    state = dict(state)
    key = sorted(state)[len(state) // 2]
    if how == "missing":
        del state[key]
    elif how == "extra":
        key = key + "_extra"
        state[key] = torch.zeros(1)
    else:
        state[key] = torch.zeros(*state[key].shape, 2)
    return state, key


@pytest.mark.parametrize("how", ["missing", "extra", "shape"])
@pytest.mark.parametrize("which", ["model.pt", "main_exp.pth"])
def test_official_pair_mismatch_names_key(tiny: VGGTS, tmp_path: Path, which: str, how: str) -> None:
    if which == "model.pt":
        backbone = {k: v for k, v in tiny.state_dict().items() if not k.startswith("head.")}
        backbone, key = _corrupt(backbone, how)
        files = _official_files(tiny, tmp_path, backbone=backbone)
    else:
        head, key = _corrupt(tiny.head.state_dict(), how)
        files = _official_files(tiny, tmp_path, head=head)
    with pytest.raises(VggtsError) as err:
        load_official(*files, VGGT_S_TINY)
    message = str(err.value)
    assert "\n" not in message
    assert which in message and repr(key) in message


def test_our_format_round_trip(tiny: VGGTS, tmp_path: Path) -> None:
    path = save_model(tiny, tmp_path / "tiny.safetensors")
    assert not list(tmp_path.glob("*.part*"))  # written atomically
    loaded = load_model(path, "cpu")
    assert loaded.cfg == VGGT_S_TINY
    _assert_same_weights(loaded, tiny)

    images = torch.rand(1, 2, 3, 140, 140, generator=torch.Generator().manual_seed(0))
    queries = torch.tensor([[[0.0, 0.0], [70.5, 33.25], [139.0, 139.0]]])
    with torch.inference_mode():
        feats = [m.features(images) for m in (tiny, loaded)]
        tracks = [m.track(f, queries) for m, f in zip((tiny, loaded), feats, strict=True)]
    assert feats[0].shape == (1, 2, 128, 70, 70)
    assert torch.equal(feats[0], feats[1])
    # Two separately allocated copies of the same weights may take different SIMD paths in the tracker's
    # small matrix products (1e-7-level differences, also between two fresh models of one seed).
    for a, b in zip(tracks[0].coords, tracks[1].coords, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(tracks[0].vis_logit, tracks[1].vis_logit, atol=1e-5, rtol=0)


def test_our_format_mismatch_names_key(tiny: VGGTS, tmp_path: Path) -> None:
    path = save_model(tiny, tmp_path / "tiny.safetensors")
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    state, key = _corrupt(load_file(path), "missing")
    save_file(state, path, metadata=header["__metadata__"])
    with pytest.raises(VggtsError, match=f"{key!r}"):
        load_model(path)


def test_our_format_rejects_other_files(tmp_path: Path) -> None:
    weights = vector_path("backbone_small.weights.safetensors")  # safetensors without our metadata
    with pytest.raises(VggtsError, match="not a vggts model"):
        load_model(weights)
    pt = tmp_path / "model.pt"
    torch.save({"a": torch.zeros(1)}, pt)
    with pytest.raises(VggtsError, match="not a vggts model file"):
        load_model(pt)
    with pytest.raises(VggtsError, match="no such file"):
        load_model(tmp_path / "absent.safetensors")


# -- model files are checked against their header before anything is built --------------------------


def _vggts_metadata(cfg: ModelConfig) -> dict[str, str]:
    """The safetensors metadata of a vggts model file of `cfg`."""
    return {"format": FORMAT, "version": FORMAT_VERSION, "config": config_to_json(cfg)}


# Loads each file named on its command line, prints each one's error, then its own peak RSS in KiB: VmHWM,
# as getrusage's ru_maxrss would include the forking test process's own.
_LOAD_AND_MEASURE = """
import re, sys
from pathlib import Path
from vggts_cli.errors import VggtsError
from vggts_cli.model.io import load_model
for path in sys.argv[1:]:
    try:
        load_model(path)
    except VggtsError as err:
        print(err)
print(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
"""


def test_small_files_claiming_the_1b_model_fail_without_building_it(tmp_path: Path) -> None:
    one = tmp_path / "one.safetensors"  # ~1 KB: one tensor under a 4 GB model's config
    save_file({"a.b": torch.zeros(4)}, one, metadata=_vggts_metadata(VGGT_S_1B))
    with torch.device("meta"):
        names = list(VGGTS(VGGT_S_1B).state_dict())
    every = tmp_path / "every.safetensors"  # every tensor name of that model, each one value
    save_file({name: torch.zeros(1) for name in names}, every, metadata=_vggts_metadata(VGGT_S_1B))
    assert one.stat().st_size < 2_000 and every.stat().st_size < 300_000

    # A child process, so that its peak memory is this load's alone.
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_MEASURE, one, every], capture_output=True, text=True, check=True
    )
    first, second, peak_kib = proc.stdout.splitlines()  # one line each
    assert first == (
        f"{one}: its model config 'vggt-s-1b' has 98 blocks, more than the file's tensor count (1): "
        "not a vggts model of that config"
    )
    assert second.startswith(
        f"{every}: its tensors are not those of its config 'vggt-s-1b', 1757 tensors of 4.1 GB"
    )
    assert second.endswith(
        "'aggregator.camera_token' has shape [1] in the file, the model needs [1, 2, 1, 1024]"
    )
    assert int(peak_kib) < 2**20  # under 1 GiB: torch itself, not the 4.1 GB the config asks for


def test_a_truncated_model_file_names_what_is_missing(tmp_path: Path) -> None:
    whole = shipped_model_path().read_bytes()
    path = tmp_path / "half.safetensors"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(VggtsError) as err:
        load_model(path)
    assert re.fullmatch(
        rf"{re.escape(str(path))}: tensor '[\w.]+' needs {decimal(len(whole))} but the file holds "
        rf"{decimal(len(whole) // 2)} \(truncated, or not a vggts model\)",
        str(err.value),
    )


def _write_safetensors(path: Path, header: dict, data: bytes) -> None:
    """A safetensors file of `header` (JSON, written as given) and `data`, valid or not."""
    text = json.dumps({"__metadata__": _vggts_metadata(VGGT_S_TINY), **header}).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        (  # a 2 kB file whose one tensor would take 4 GB
            {"a.b": {"dtype": "F32", "shape": [10**9], "data_offsets": [0, 4 * 10**9]}},
            bytes(1000),
            r"tensor 'a.b' needs 4.0 GB but the file holds \d\.\d kB \(truncated, or not a vggts model\)",
        ),
        (
            {"a.b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}},
            bytes(8),
            r"not a valid safetensors file: tensor 'a.b' \(F32 \[4\]\) takes 16 bytes, its offsets give it 8",
        ),
        (
            {"a.b": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}},
            bytes(16),
            r"not a valid safetensors file: bad header entry for tensor 'a.b'",
        ),
    ],
)
def test_bad_headers_give_one_line(tmp_path: Path, header: dict, data: bytes, message: str) -> None:
    path = tmp_path / "bad.safetensors"
    _write_safetensors(path, header, data)
    with pytest.raises(VggtsError) as err:
        load_model(path)
    assert re.fullmatch(f"{re.escape(str(path))}: {message}", str(err.value))


def test_a_header_longer_than_the_file_is_not_a_model_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.safetensors"
    path.write_bytes(shipped_model_path().read_bytes()[:100])
    with pytest.raises(
        VggtsError, match=r"its header length \(.+\) does not fit in the file \(100 bytes\); "
    ) as err:
        load_model(path)
    assert str(err.value).startswith(f"{path}: not a vggts model file")


def test_a_config_that_cannot_be_built_is_one_line(tmp_path: Path) -> None:
    cfg = dataclasses.replace(VGGT_S_TINY, head=dataclasses.replace(VGGT_S_TINY.head, embed_dim=-32))
    path = tmp_path / "negative.safetensors"
    save_file({f"t{i}": torch.zeros(1) for i in range(30)}, path, metadata=_vggts_metadata(cfg))
    with pytest.raises(VggtsError, match=r"its model config cannot be built \(.+\)$") as err:
        load_model(path)
    assert "\n" not in str(err.value)


def test_the_shipped_model_loads() -> None:
    model = load_model(DEFAULT_MODEL)
    assert model.cfg == VGGT_S_LITE
    assert sum(p.numel() for p in model.parameters()) > 10**6


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_json_round_trip(name: str) -> None:
    assert config_from_json(config_to_json(CONFIGS[name])) == CONFIGS[name]


def test_config_json_defaults_and_unknown_fields() -> None:
    data = json.loads(config_to_json(VGGT_S_TINY))
    del data["head"]["passes"]  # a file written before a field existed gets the default
    assert config_from_json(json.dumps(data)) == VGGT_S_TINY
    data["tracker"]["future_field"] = 1
    with pytest.raises(ValueError, match="future_field"):
        config_from_json(json.dumps(data))
