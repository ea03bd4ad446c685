"""Reading and writing VGGT-S weights, and the one config⇄JSON codec.

Checkpoints come in two forms:
- the official pair: VGGT's `model.pt` (a state dict with `aggregator.*`, `track_head.*` and the camera,
  depth and point heads, which VGGT-S does not use and we skip by name) and VGGT-S's `main_exp.pth`
  (a training checkpoint whose `'model'` entry is the head, keys without prefix);
- our own single `.safetensors` file: every key of `VGGTS` (`aggregator.*`, `track_head.*`, `head.*`)
  plus the `ModelConfig` as JSON in the file's metadata, so a file says which model it holds. Its header
  is checked against the file's size and its config before the model is built (`load_file_model`).
Every key is matched strictly; any failure is a one-line `VggtsError`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

import torch
from rich.filesize import decimal
from safetensors.torch import save_file
from torch import nn

from vggts_cli.device import resolve_device
from vggts_cli.errors import VggtsError
from vggts_cli.fsutil import PartialOutput, not_a_file
from vggts_cli.model import hub
from vggts_cli.model.checkpoints import (
    VGGT_SKIPPED_PREFIXES,
    first_line,
    load_into,
    read_state_dict,
    state_mismatch,
)
from vggts_cli.model.configs import VGGT_S_1B, ModelConfig
from vggts_cli.model.vggts import VGGTS
from vggts_cli.weights import DEFAULT_MODEL, shipped_model_path

C = TypeVar("C")
FORMAT = "vggts-model"  # safetensors metadata "format" of our files
FORMAT_VERSION = "1"
OFFICIAL_MODEL = VGGT_S_1B.name  # the name that loads the official pair through the hub
# Official weights by hub name: VGGT's model.pt (backbone) and VGGT-S's main_exp.pth (head).
OFFICIAL_BACKBONE, OFFICIAL_HEAD = "vggt-1b", "vggt-s-head"
_CPU = torch.device("cpu")


# -- configs as JSON ---------------------------------------------------------------------------------


def to_json(config: Any) -> str:
    """A config dataclass (ModelConfig, TrainConfig) as compact JSON: nested dataclasses become objects,
    tuples lists, keys sorted."""
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


def from_json(cls: type[C], text: str) -> C:
    """The inverse of `to_json`. Fields missing from the JSON take their defaults (files written before a
    field was added); an unknown field raises ValueError (a file from a newer vggts)."""
    return _dataclass_from_dict(cls, json.loads(text))


def config_to_json(cfg: ModelConfig) -> str:
    """A ModelConfig as JSON (`to_json`)."""
    return to_json(cfg)


def config_from_json(text: str) -> ModelConfig:
    """A ModelConfig from `config_to_json`'s JSON."""
    return from_json(ModelConfig, text)


def _dataclass_from_dict(cls: type, data: Any) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field {unknown[0]!r}")
    values = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = _dataclass_from_dict(hint, value)
        elif isinstance(value, list):
            value = tuple(value)
        values[name] = value
    return cls(**values)


# -- checkpoints -------------------------------------------------------------------------------------


def _load_checked(module: nn.Module, state: dict[str, torch.Tensor], path: Path, **kwargs: Any) -> None:
    """`load_into`, with the file named in its error."""
    try:
        load_into(module, state, **kwargs)
    except VggtsError as err:
        raise VggtsError(f"{path}: {err}") from None


def load_backbone(model: VGGTS, path: str | PathLike[str]) -> None:
    """Load VGGT's `model.pt` layout (or any file of `aggregator.*` + `track_head.*` keys) strictly into
    `model`'s backbone; the camera, depth and point heads are skipped by name."""
    path = Path(path)
    _load_checked(model.backbone(), read_state_dict(path), path, skip_prefixes=VGGT_SKIPPED_PREFIXES)


def load_head(model: VGGTS, path: str | PathLike[str]) -> None:
    """Load VGGT-S's `main_exp.pth` (its `'model'` entry; keys without prefix) strictly into `model.head`."""
    path = Path(path)
    _load_checked(model.head, read_state_dict(path), path)


def _build(cfg: ModelConfig, device: torch.device) -> VGGTS:
    """VGGTS(cfg) initialised directly on `device` (no CPU copy of a 4 GB model on the way to a GPU)."""
    with device:
        return VGGTS(cfg)


def load_official(
    model_pt: str | PathLike[str],
    main_exp: str | PathLike[str],
    cfg: ModelConfig = VGGT_S_1B,
    device: torch.device = _CPU,
) -> VGGTS:
    """A `VGGTS(cfg)` on `device`, eval mode, frozen, from the official pair `model.pt` + `main_exp.pth`."""
    model = _build(cfg, device)
    load_backbone(model, model_pt)
    load_head(model, main_exp)
    return model.eval().requires_grad_(False)


def save_model(model: VGGTS, path: str | PathLike[str]) -> Path:
    """Write `model` as one self-describing safetensors file (atomically); returns the path."""
    path = Path(path)
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    metadata = {"format": FORMAT, "version": FORMAT_VERSION, "config": config_to_json(model.cfg)}
    try:
        with PartialOutput(path) as partial:
            save_file(state, partial, metadata=metadata)
    except OSError as err:
        raise VggtsError(f"{path}: cannot write the model ({err.strerror or err})") from None
    return path


def read_config(path: str | PathLike[str]) -> ModelConfig:
    """The ModelConfig stored in one of our safetensors files."""
    path = Path(path)
    return _stored_config(path, _read_header(path).metadata)


def load_file_model(path: str | PathLike[str], device: torch.device = _CPU) -> VGGTS:
    """A VGGTS on `device`, eval mode, frozen, from one of our safetensors files (built from its config).

    The file's header is checked against the file's size and against the tensors the config implies before
    the model is built, so a small file that claims a huge model fails at once instead of allocating it.
    """
    path = Path(path)
    header = _read_header(path)
    cfg = _stored_config(path, header.metadata)
    _check_tensors(path, cfg, header)
    model = _build(cfg, device)
    _load_checked(model, read_state_dict(path), path)
    return model.eval().requires_grad_(False)


# -- the safetensors header, checked before anything is built ---------------------------------------

_HEADER_LIMIT = 100_000_000  # safetensors' own limit on the JSON header
# Bytes per element of each safetensors dtype (the format's names).
_DTYPE_BYTES = {
    **dict.fromkeys(("BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3"), 1),
    **dict.fromkeys(("I16", "U16", "F16", "BF16"), 2),
    **dict.fromkeys(("I32", "U32", "F32"), 4),
    **dict.fromkeys(("I64", "U64", "F64"), 8),
}


@dataclasses.dataclass(frozen=True)
class _Header:
    """A safetensors file's header: its metadata and each tensor's shape, and the file's size."""

    metadata: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]
    file_size: int


def _read_header(path: Path) -> _Header:
    """The header of safetensors file `path` (8 bytes of little-endian length, then JSON), checked against
    the file: the header fits in it, and every tensor's offsets span its dtype × shape bytes inside it."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            length = int.from_bytes(f.read(8), "little")
            if length > size - 8:
                raise VggtsError(
                    _not_ours(
                        path,
                        f"its header length ({decimal(length)}) does not fit in the file ({decimal(size)})",
                    )
                )
            if length > _HEADER_LIMIT:
                raise VggtsError(
                    _not_ours(path, f"its header length ({decimal(length)}) is over safetensors' limit")
                )
            text = f.read(length)
    except OSError as err:
        raise VggtsError(f"{path}: cannot read the file: {err.strerror or err}") from None
    try:
        header = json.loads(text)
    except ValueError:  # also bytes that are not UTF-8
        header = None
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__", {}), dict):
        raise VggtsError(_not_ours(path, "its header is not a safetensors JSON header"))
    metadata = header.pop("__metadata__", {})
    shapes, ends = {}, {}
    for name, entry in header.items():
        try:
            dtype, shape, (start, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            valid = dtype in _DTYPE_BYTES and all(isinstance(v, int) and v >= 0 for v in (*shape, start, end))
        except (KeyError, TypeError, ValueError):
            valid = False
        if not valid:
            raise VggtsError(f"{path}: not a valid safetensors file: bad header entry for tensor {name!r}")
        nbytes = math.prod(shape) * _DTYPE_BYTES[dtype]
        if end - start != nbytes:
            raise VggtsError(
                f"{path}: not a valid safetensors file: tensor {name!r} ({dtype} {list(shape)}) takes "
                f"{nbytes:,} bytes, its offsets give it {end - start:,}"
            )
        shapes[name], ends[name] = tuple(shape), 8 + length + end
    last = max(ends, key=ends.__getitem__, default=None)
    if last is not None and ends[last] > size:
        raise VggtsError(
            f"{path}: tensor {last!r} needs {decimal(ends[last])} but the file holds {decimal(size)} "
            "(truncated, or not a vggts model)"
        )
    return _Header(metadata=metadata, shapes=shapes, file_size=size)


def _not_ours(path: Path, reason: str) -> str:
    return (
        f"{path}: not a vggts model file (a .safetensors file written by vggts): {reason}; the official "
        f"model.pt + main_exp.pth pair loads as {OFFICIAL_MODEL!r}"
    )


def _stored_config(path: Path, metadata: dict[str, Any]) -> ModelConfig:
    """The ModelConfig in a vggts file's header metadata."""
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise VggtsError(
            f"{path}: a safetensors file, but not a vggts model (no model config in its metadata)"
        )
    if metadata.get("version") != FORMAT_VERSION:
        raise VggtsError(
            f"{path}: vggts model format version {metadata.get('version')!r}; this vggts reads "
            f"version {FORMAT_VERSION}"
        )
    try:
        return config_from_json(metadata["config"])
    except (ValueError, TypeError) as err:
        raise VggtsError(f"{path}: bad model config in its metadata ({err})") from None


def _check_tensors(path: Path, cfg: ModelConfig, header: _Header) -> None:
    """The tensors `VGGTS(cfg)` holds must be the file's, names and shapes. They are found on the meta
    device, which allocates nothing, so a config that claims a huge model costs nothing to check."""
    try:
        _check_blocks(path, cfg, len(header.shapes))
        with torch.device("meta"):
            expected = VGGTS(cfg).state_dict()
    except VggtsError:
        raise
    except Exception as err:  # a config of wrong types or sizes that do not fit together
        raise VggtsError(f"{path}: its model config cannot be built ({first_line(err)})") from None
    mismatch = state_mismatch({key: value.shape for key, value in expected.items()}, header.shapes)
    if mismatch:
        nbytes = sum(value.numel() * value.element_size() for value in expected.values())
        raise VggtsError(
            f"{path}: its tensors are not those of its config {cfg.name!r}, {len(expected)} tensors of "
            f"{decimal(nbytes)} (the file holds {len(header.shapes)} in {decimal(header.file_size)}): "
            f"{mismatch}"
        )


def _check_blocks(path: Path, cfg: ModelConfig, tensors: int) -> None:
    """Building a block costs time even on the meta device, and each holds tensors of its own: a config of
    more blocks than the file has tensors is refused before it is built."""
    blocks = cfg.aggregator.dino.depth + 2 * cfg.aggregator.depth + 4 * cfg.tracker.depth + cfg.head.depth
    if blocks > tensors:
        raise VggtsError(
            f"{path}: its model config {cfg.name!r} has {blocks:,} blocks, more than the file's tensor count "
            f"({tensors}): not a vggts model of that config"
        )


def load_model(name_or_path: str | PathLike[str], device: str | torch.device = "cpu") -> VGGTS:
    """`vggt-s-1b` -> the official pair through the hub (Hugging Face cache, downloaded when missing);
    `vggt-s-lite` -> the model shipped in the package; a file path -> our safetensors format. Returns the
    model in eval mode on `device`, frozen."""
    device = resolve_device(device) if isinstance(device, str) else device
    name = str(name_or_path)
    if name == OFFICIAL_MODEL and not Path(name).is_file():
        backbone, head = hub.resolve([OFFICIAL_BACKBONE, OFFICIAL_HEAD], needed_by=OFFICIAL_MODEL)
        return load_official(backbone, head, device=device)
    if name == DEFAULT_MODEL and not Path(name).is_file():
        shipped = shipped_model_path()
        if not shipped.is_file():
            raise VggtsError(f"the shipped model {DEFAULT_MODEL!r} is missing from this install ({shipped})")
        return load_file_model(shipped, device)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise VggtsError(
            f"{path}: {not_a_file(path)}; --model takes a vggts "
            f"model file (.safetensors), {DEFAULT_MODEL!r} (shipped) or {OFFICIAL_MODEL!r}"
        )
    return load_file_model(path, device)
