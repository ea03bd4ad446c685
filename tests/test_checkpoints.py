"""Checkpoint reading and strict loading, on files laid out like the official `model.pt` / `main_exp.pth`.

The official key tables (shared/research/official/*.keys.tsv) give every key and shape; stand-in modules
built from them exercise the loader without the real model.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from vectors import KeyTable, official_keys, vector_path

from vggts_cli.errors import VggtsError
from vggts_cli.model.checkpoints import VGGT_SKIPPED_PREFIXES, load_into, read_state_dict


class TableModule(nn.Module):
    """A throwaway module whose parameters and persistent buffers are exactly the rows of a key table."""

    def __init__(self, table: KeyTable, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        for key, shape, kind in table:
            *path, leaf = key.split(".")
            owner: nn.Module = self
            for part in path:
                if not hasattr(owner, part):
                    owner.add_module(part, nn.Module())
                owner = getattr(owner, part)
            tensor = torch.zeros(shape, dtype=dtype)
            if kind == "buffer":
                owner.register_buffer(leaf, tensor)
            else:
                owner.register_parameter(leaf, nn.Parameter(tensor))


def _random_state(table: KeyTable, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {key: torch.randn(shape, generator=gen) for key, shape, _ in table}


def _assert_loaded(module: nn.Module, state: dict[str, torch.Tensor], prefix: str = "") -> None:
    """Every module tensor equals its file value after casting to the module's dtype (an exact copy)."""
    got = {prefix + key: value for key, value in module.state_dict().items()}
    assert got.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(got[key], value.to(got[key].dtype)), key


def _one_line_error(match: str, call, *args) -> str:
    with pytest.raises(VggtsError, match=match) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message and len(message) < 400
    return message


# ---- the official key tables ---------------------------------------------------------------------------


def test_vggt_1b_table_and_skipped_heads() -> None:
    table = official_keys("vggt-1b.keys.tsv")
    assert len(table) == 1797
    assert sum(math.prod(shape) for _, shape, _ in table) == 1_256_537_516
    assert all(kind == "param" for *_, kind in table)  # model.pt holds no buffers
    kept = [row for row in table if not row[0].startswith(VGGT_SKIPPED_PREFIXES)]
    # model.md: VGGT-S builds aggregator + track head only: 1604 keys, 975,053,716 values
    assert len(kept) == 1604
    assert sum(math.prod(shape) for _, shape, _ in kept) == 975_053_716
    assert {key.split(".")[0] for key, *_ in kept} == {"aggregator", "track_head"}


def test_vggt_s_head_table() -> None:
    table = official_keys("vggt-s-head.keys.tsv")
    assert len(table) == 153
    assert sum(math.prod(shape) for _, shape, _ in table) == 37_968_368
    assert sum(math.prod(shape) for _, shape, kind in table if kind == "buffer") == 1_024


# ---- model.pt layout: a plain state dict of the whole VGGT ---------------------------------------------


def _vggt_subset() -> KeyTable:
    """Tokens, one frame block, the tracker's first layers and a few keys of each skipped head."""
    table = official_keys("vggt-1b.keys.tsv")
    wanted = (
        "aggregator.camera_token",
        "aggregator.register_token",
        "aggregator.frame_blocks.0.",
        "track_head.tracker.updateformer.input_norm.",
        "camera_head.token_norm.",
        "depth_head.norm.",
        "point_head.norm.",
    )
    subset = [row for row in table if row[0].startswith(wanted)]
    assert {key.split(".")[0] for key, *_ in subset} == {
        "aggregator",
        "track_head",
        *(p[:-1] for p in VGGT_SKIPPED_PREFIXES),
    }
    return subset


def test_model_pt_layout_loads_skipping_unbuilt_heads(tmp_path: Path) -> None:
    table = _vggt_subset()
    state = _random_state(table)
    torch.save(state, tmp_path / "model.pt")

    read = read_state_dict(tmp_path / "model.pt")
    assert list(read) == list(state)
    built = [row for row in table if not row[0].startswith(VGGT_SKIPPED_PREFIXES)]
    model = TableModule(built)
    load_into(model, read, skip_prefixes=VGGT_SKIPPED_PREFIXES)
    _assert_loaded(model, {key: state[key] for key, *_ in built})

    # without the skip list the unbuilt heads are unexpected keys
    _one_line_error("unexpected key 'camera_head.token_norm.weight'", load_into, TableModule(built), read)


def test_prefix_selects_a_submodule(tmp_path: Path) -> None:
    table = _vggt_subset()
    state = _random_state(table)
    aggregator = TableModule(
        [
            (key.removeprefix("aggregator."), shape, kind)
            for key, shape, kind in table
            if key.startswith("aggregator.")
        ]
    )
    load_into(aggregator, state, prefix="aggregator.")
    _assert_loaded(
        aggregator,
        {key: value for key, value in state.items() if key.startswith("aggregator.")},
        "aggregator.",
    )


# ---- main_exp.pth layout: a training checkpoint around the head's state dict ---------------------------


def test_main_exp_pth_layout_loads_at_full_size(tmp_path: Path) -> None:
    table = official_keys("vggt-s-head.keys.tsv")
    state = _random_state(table)
    # The optimizer/scheduler entries only need the official structure (AdamW with per-parameter state,
    # MultiStepLR whose milestones are a collections.Counter), not the head's size.
    dummy = nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.AdamW([dummy], lr=1e-4)
    dummy.grad = torch.ones(3)
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[8, 10])
    assert type(scheduler.state_dict()["milestones"]).__name__ == "Counter"
    checkpoint = {
        "model": state,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": 11,
    }
    torch.save(checkpoint, tmp_path / "main_exp.pth")

    read = read_state_dict(tmp_path / "main_exp.pth")
    assert list(read) == [key for key, *_ in table]
    head = TableModule(table)
    load_into(head, read)
    _assert_loaded(head, state)  # includes the two random-Fourier buffers


def test_module_prefix_is_stripped(tmp_path: Path) -> None:
    state = {"module.a.weight": torch.randn(2, 3), "module.b": torch.randn(4)}
    torch.save({"model": state, "epoch": 1}, tmp_path / "ddp.pth")
    read = read_state_dict(tmp_path / "ddp.pth")
    assert list(read) == ["a.weight", "b"]
    torch.testing.assert_close(read["a.weight"], state["module.a.weight"], rtol=0, atol=0)


def test_values_are_cast_to_the_module_dtype() -> None:
    table = official_keys("vggt-s-head.keys.tsv")[:14]  # the prompt encoder, incl. both buffers
    state = _random_state(table)
    head = TableModule(table, dtype=torch.bfloat16)
    load_into(head, state)
    assert {tensor.dtype for tensor in head.state_dict().values()} == {torch.bfloat16}
    _assert_loaded(head, state)


def test_non_persistent_buffers_are_not_expected_in_the_file() -> None:
    # e.g. the aggregator's ImageNet mean/std: constants of the code, absent from model.pt
    module = TableModule([("norm.weight", (4,), "param")])
    module.register_buffer("mean", torch.full((3,), 0.5), persistent=False)
    load_into(module, {"norm.weight": torch.ones(4)})
    assert torch.equal(module.norm.weight, torch.ones(4)) and torch.equal(module.mean, torch.full((3,), 0.5))


def test_safetensors(tmp_path: Path) -> None:
    table = official_keys("vggt-s-head.keys.tsv")[:14]
    state = _random_state(table)
    save_file(state, tmp_path / "head.safetensors")
    read = read_state_dict(tmp_path / "head.safetensors")
    head = TableModule(table)
    load_into(head, read)
    _assert_loaded(head, state)


def test_official_head_test_vector_reads() -> None:
    read = read_state_dict(vector_path("head_small.weights.safetensors"))
    assert sorted(read) == sorted(
        key for key, *_ in official_keys("vggt-s-head.keys.tsv")
    )  # safetensors sorts keys
    assert sum(value.numel() for value in read.values()) == 2_890_608  # testvectors/README.md


# ---- strictness: missing, unexpected and mis-shaped keys -----------------------------------------------


@pytest.fixture
def small_head() -> tuple[KeyTable, dict[str, torch.Tensor]]:
    table = official_keys("vggt-s-head.keys.tsv")[:14]
    return table, _random_state(table)


def test_missing_key_is_named(small_head) -> None:
    table, state = small_head
    del state["prompt_encoder.sa_tar_img_pe.weight"]
    message = _one_line_error("missing key", load_into, TableModule(table), state)
    assert "'prompt_encoder.sa_tar_img_pe.weight'" in message


def test_unexpected_key_is_named(small_head) -> None:
    table, state = small_head
    state["prompt_encoder.extra.weight"] = torch.zeros(1)
    _one_line_error("unexpected key 'prompt_encoder.extra.weight'", load_into, TableModule(table), state)


def test_misshaped_key_names_both_shapes_and_copies_nothing(small_head) -> None:
    table, state = small_head
    last = table[-1][0]
    assert last == "prompt_encoder.mask_downscaling.3.bias"
    state[last] = torch.zeros(127)
    head = TableModule(table)
    message = _one_line_error("has shape", load_into, head, state)
    assert f"'{last}'" in message and "[127]" in message and "[128]" in message
    # keys before the bad one were not copied: the check runs before any copy
    assert all(torch.count_nonzero(value) == 0 for value in head.state_dict().values())


def test_missing_key_under_prefix_is_named_with_prefix() -> None:
    module = TableModule([("norm.weight", (4,), "param")])
    _one_line_error("missing key 'aggregator.norm.weight'", load_into, module, {}, "aggregator.")


# ---- unreadable files: always one line naming the file -------------------------------------------------

_unpickled: list[str] = []


def _record_unpickling() -> str:
    _unpickled.append("code ran")
    return "payload"


class Payload:
    """An arbitrary object; unpickling it would run `_record_unpickling`."""

    def __reduce__(self):
        return (_record_unpickling, ())


class Point:
    """A plain class of the user's; unpickling an instance would call `__setstate__`."""

    def __init__(self, x: float) -> None:
        self.x = x

    def __setstate__(self, state: dict) -> None:
        _unpickled.append("Point")
        self.__dict__.update(state)


def test_pickled_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": {"a": torch.zeros(2)}, "extra": Payload()}, path)
    message = _one_line_error("refused: it holds pickled Python objects", read_state_dict, path)
    assert message.startswith(f"{path}: ") and f"(here `{__name__}._record_unpickling`)" in message
    assert _unpickled == []


def _pickle_dump(path: Path, value: object, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
    with path.open("wb") as f:
        pickle.dump(value, f, protocol=protocol)


@pytest.mark.parametrize(
    "write",
    [
        torch.save,  # torch's zip format: torch names the class it refuses
        lambda value, path: torch.save(value, path, _use_new_zipfile_serialization=False),
        lambda value, path: _pickle_dump(path, value),  # Python's own pickle, not a torch file
        lambda value, path: _pickle_dump(path, value, protocol=2),
    ],
    ids=["torch.save", "torch.save-legacy", "pickle", "pickle-protocol-2"],
)
def test_a_pickled_object_is_named_in_the_refusal(tmp_path: Path, write) -> None:
    path = tmp_path / "ckpt.pt"
    write({"model": {"a": torch.zeros(2)}, "centre": Point(1.5)}, path)
    message = _one_line_error("refused", read_state_dict, path)
    assert message == (
        f"{path}: refused: it holds pickled Python objects (here `{__name__}.Point`), which vggts never "
        "unpickles; save a plain state_dict with torch.save or use safetensors"
    )
    assert _unpickled == []


def _write_truncated(path: Path) -> None:
    torch.save({"a": torch.randn(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _write_truncated_safetensors(path: Path) -> None:
    save_file({"a": torch.randn(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("name", "write", "match"),
    [
        ("truncated.pt", _write_truncated, "truncated or corrupt"),
        ("truncated.safetensors", _write_truncated_safetensors, "not a valid safetensors file"),
        ("notes.pth", lambda p: p.write_text("not a checkpoint\n"), "not a PyTorch checkpoint"),
        ("empty.pt", lambda p: p.write_bytes(b""), "empty"),
        ("missing.pt", lambda p: None, "no such file"),
        ("numbers.pt", lambda p: torch.save({"a": torch.zeros(1), "step": 3}, p), "'step' holds a int"),
        ("list.pt", lambda p: torch.save([torch.zeros(1)], p), "holds a list"),
        (
            "plain.pkl",
            lambda p: _pickle_dump(p, {"a": [1, 2]}, protocol=2),
            "a Python pickle but not a torch.save checkpoint; save a plain state_dict with torch.save",
        ),
        (
            "plain4.pkl",
            lambda p: _pickle_dump(p, {"a": [1, 2]}, protocol=4),
            r"refused: torch.load\(weights_only=True\) cannot read its pickle \(Unsupported operand \d+\)",
        ),
    ],
)
def test_bad_files_give_one_line(tmp_path: Path, name: str, write, match: str) -> None:
    path = tmp_path / name
    write(path)
    message = _one_line_error(match, read_state_dict, path)
    assert message.startswith(str(path))
