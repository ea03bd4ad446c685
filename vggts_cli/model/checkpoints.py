"""Read checkpoint files into plain state dicts and load them strictly into our modules.

Only tensors are ever read: `.safetensors` through safetensors, anything else through
`torch.load(weights_only=True)`, which refuses pickled objects other than tensors and plain containers.
Every failure becomes a one-line `VggtsError` that names the file, never a traceback.
"""

from __future__ import annotations

import pickletools
import re
import warnings
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import BinaryIO

import torch
from safetensors.torch import load_file
from torch import nn

from vggts_cli.errors import VggtsError
from vggts_cli.fsutil import not_a_file

# `facebook/VGGT-1B` `model.pt` holds the whole VGGT model, but VGGT-S only uses the aggregator and the
# track head. The camera, depth and point heads (193 keys, 281 M values) are deliberately not built, so
# their keys are ignored instead of being reported as unexpected.
VGGT_SKIPPED_PREFIXES = ("camera_head.", "depth_head.", "point_head.")

_MISMATCH = "checkpoint does not match the model"
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
_PICKLE_MAGIC = b"\x80"  # a pickle of protocol >= 2: torch.save's legacy format
# The modules of the globals torch.save itself writes: tensors, storages, OrderedDict state dicts, bytes.
_TORCH_SAVE_MODULES = ("torch", "collections", "_codecs")
_SAVE_HINT = "save a plain state_dict with torch.save or use safetensors"


def read_state_dict(path: str | PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict (key -> tensor) from a `.safetensors`, `.pt` or `.pth` file, on the CPU.

    A training checkpoint of the VGGT-S layout (`{'model': state_dict, 'optimizer': ..., ...}`) yields its
    `'model'` entry; a leading `module.` (a DistributedDataParallel wrapper) is stripped from every key.
    Tensors of a zip-format torch file are memory-mapped, so a 5 GB checkpoint costs no extra RAM.
    """
    path = Path(path)
    if not path.is_file():
        raise VggtsError(f"{path}: {not_a_file(path)}")
    try:
        loaded = _read_safetensors(path) if path.suffix == ".safetensors" else _read_torch(path)
    except OSError as err:
        raise VggtsError(f"{path}: cannot read the file: {err.strerror or err}") from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("model"), Mapping):
        loaded = loaded["model"]
    if not isinstance(loaded, Mapping):
        raise VggtsError(f"{path}: holds a {type(loaded).__name__}, not a state dict of tensors")
    state: dict[str, torch.Tensor] = {}
    for key, value in loaded.items():
        if not isinstance(key, str):
            raise VggtsError(f"{path}: not a state dict: key {key!r} is not a string")
        if not isinstance(value, torch.Tensor):
            raise VggtsError(
                f"{path}: not a state dict: {key!r} holds a {type(value).__name__}, not a tensor"
            )
        name = key.removeprefix("module.")
        if name in state:
            raise VggtsError(f"{path}: key {name!r} appears both with and without a 'module.' prefix")
        state[name] = value
    return state


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path, device="cpu")
    except OSError:
        raise
    except Exception as err:  # safetensors raises its own SafetensorError with a one-line message
        raise VggtsError(f"{path}: not a valid safetensors file ({first_line(err)})") from None


def _read_torch(path: Path) -> object:
    with path.open("rb") as f:
        magic = f.read(4)
    if not magic:
        raise VggtsError(f"{path}: the file is empty")
    if not magic.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        raise VggtsError(f"{path}: not a PyTorch checkpoint (.pt/.pth) or a .safetensors file")
    is_zip = magic == _ZIP_MAGIC
    try:
        # torch warns about unusual pickle protocols; the file is either loaded or refused below anyway
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except OSError:
        raise
    except Exception as err:
        what = "a zip archive but not a readable PyTorch checkpoint" if is_zip else "unreadable checkpoint"
        raise VggtsError(f"{path}: {_torch_load_reason(err, path, is_zip) or what}") from None


def _torch_load_reason(err: Exception, path: Path, is_zip: bool) -> str | None:
    """A one-line cause from torch.load's (often multi-paragraph) error text, or None when it has none."""
    text = str(err)
    refused = "WeightsUnpickler error" in text
    no_magic = "Invalid magic number" in text  # a pickle, but not in torch.save's legacy framing
    named = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    # torch names the first global it refuses, but a pickle of protocol 4 or above (Python's default) it
    # refuses at its first opcode, and in a plain pickle.dump it first meets the tensors' storages: a pickle
    # that is not a zip is searched for the file's own objects first.
    foreign = _foreign_global(path) if (refused or no_magic) and not is_zip else None
    name = foreign or (named.group(1) if named else None)
    if name:
        return (
            f"refused: it holds pickled Python objects (here `{name}`), which vggts never unpickles; "
            f"{_SAVE_HINT}"
        )
    if refused:
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0]
        return f"refused: torch.load(weights_only=True) cannot read its pickle ({detail}); {_SAVE_HINT}"
    if no_magic:
        return f"a Python pickle but not a torch.save checkpoint; {_SAVE_HINT}"
    if "PytorchStreamReader" in text or "unexpected EOF" in text:
        return f"truncated or corrupt file ({first_line(err).split('. ')[0]})"
    return None


def _foreign_global(path: Path) -> str | None:
    """The first `module.name`, other than those torch.save writes itself, that the pickles at the start of
    `path` import, read from their opcodes (nothing is unpickled); None when there is none."""
    try:
        with path.open("rb") as f:
            for _ in range(4):  # torch.save's legacy format: magic number, protocol, system info, the object
                for name in _pickled_globals(f):
                    if name.split(".")[0] not in _TORCH_SAVE_MODULES:
                        return name
    except ValueError:  # the end of the file, or bytes that are not a pickle (legacy tensor data)
        pass
    return None


def _pickled_globals(stream: BinaryIO) -> Iterator[str]:
    """The `module.name` of each global that one pickle imports, in order, from its opcodes alone."""
    memo: dict[int, str | None] = {}
    pushed: deque[str | None] = deque(maxlen=2)  # the last two values pushed, where they are strings
    for op, arg, _ in pickletools.genops(stream):
        if op.name in ("GLOBAL", "INST"):
            yield arg.replace(" ", ".")
        elif op.name == "STACK_GLOBAL" and len(pushed) == 2 and None not in pushed:
            yield ".".join(pushed)
        if op.name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            memo[len(memo) if op.name == "MEMOIZE" else arg] = pushed[-1] if pushed else None
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(arg))
        elif op.name not in ("FRAME", "PROTO"):  # they push nothing (a FRAME may sit between the two names)
            pushed.append(arg if isinstance(arg, str) else None)


def first_line(err: Exception) -> str:
    """The first line of an exception's text (its type name when it has none)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def load_into(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    prefix: str = "",
    skip_prefixes: Sequence[str] = (),
) -> None:
    """Copy `state` into `module` strictly, casting each tensor to the dtype of its parameter or buffer.

    The keys of `state` under `prefix` (with `prefix` removed) must match the module's parameters and
    persistent buffers exactly, except keys starting with one of `skip_prefixes` (full file key names, e.g.
    `VGGT_SKIPPED_PREFIXES`), which are ignored. The first missing, unexpected or mis-shaped key raises
    `VggtsError` before anything is copied, so a failed load leaves the module untouched.
    """
    skip = tuple(skip_prefixes)
    wanted = {
        key[len(prefix) :]: value
        for key, value in state.items()
        if key.startswith(prefix) and not key.startswith(skip)
    }
    expected = module.state_dict(keep_vars=True)
    mismatch = state_mismatch(
        {key: value.shape for key, value in expected.items()},
        {key: value.shape for key, value in wanted.items()},
        prefix,
    )
    if mismatch:
        raise VggtsError(f"{_MISMATCH}: {mismatch}")
    # Keys, shapes and completeness are checked, so this cannot fail; it copies into the existing
    # tensors (casting dtype) and honours any module-specific load hooks.
    module.load_state_dict(wanted, strict=True)


def state_mismatch(
    expected: Mapping[str, Sequence[int]], found: Mapping[str, Sequence[int]], prefix: str = ""
) -> str | None:
    """How the tensor shapes `found` in a file differ from those a model `expected` (key -> shape): the
    first missing, unexpected or mis-shaped key (named with `prefix`), or None when they match."""
    missing = [key for key in expected if key not in found]
    if missing:
        return f"missing key {prefix + missing[0]!r}{_more(missing)}"
    unexpected = [key for key in found if key not in expected]
    if unexpected:
        return f"unexpected key {prefix + unexpected[0]!r}{_more(unexpected)}"
    for key, shape in expected.items():
        if tuple(found[key]) != tuple(shape):
            return f"{prefix + key!r} has shape {list(found[key])} in the file, the model needs {list(shape)}"
    return None


def _more(keys: list[str]) -> str:
    return f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
