"""The official test vectors and key tables in shared/ (checked out beside the repo).

Every helper skips the calling test when its file is absent, so the suite runs without shared/.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TypeVar

import pytest
import torch
from safetensors.torch import load_file

SHARED = Path(__file__).resolve().parents[2] / "shared"
TESTVECTORS = SHARED / "testvectors"
OFFICIAL = SHARED / "research" / "official"

KeyTable = list[tuple[str, tuple[int, ...], str]]  # (key, shape, kind: "param" | "buffer")
V = TypeVar("V")


def shared_file(path: Path) -> Path:
    """`path`, or skip the test when it does not exist."""
    if not path.is_file():
        pytest.skip(f"{path} not found (shared/ is checked out beside the repo)")
    return path


def vector_path(name: str) -> Path:
    """shared/testvectors/`name`."""
    return shared_file(TESTVECTORS / name)


def strip_prefix(mapping: dict[str, V], prefix: str) -> dict[str, V]:
    """The entries whose key starts with `prefix`, keyed without it."""
    return {key[len(prefix) :]: value for key, value in mapping.items() if key.startswith(prefix)}


def load_vectors(name: str, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors of shared/testvectors/`name` whose key starts with `prefix`, keyed without it."""
    return strip_prefix(load_file(vector_path(name)), prefix)


def official_keys(name: str) -> KeyTable:
    """The rows of shared/research/official/`name` (a `*.keys.tsv`) in state_dict() order."""
    path = shared_file(OFFICIAL / name)
    rows = [line.split("\t") for line in path.read_text().splitlines() if line and not line.startswith("#")]
    assert rows[0] == ["key", "shape", "dtype", "numel", "kind"]
    table = []
    for key, shape, dtype, numel, kind in rows[1:]:
        dims = tuple(int(d) for d in shape.split("x"))
        assert dtype == "float32" and math.prod(dims) == int(numel) and kind in ("param", "buffer")
        table.append((key, dims, kind))
    return table


def official_shapes(name: str, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """Shape of every key of the table `name` that starts with `prefix`, keyed without it."""
    return strip_prefix({key: shape for key, shape, _ in official_keys(name)}, prefix)
