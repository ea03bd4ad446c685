"""Test helper: tiny random models in our checkpoint format."""

from __future__ import annotations

from pathlib import Path

import torch

from vggts_cli.model.configs import VGGT_S_TINY, ModelConfig
from vggts_cli.model.io import save_model
from vggts_cli.model.vggts import VGGTS


def make_tiny_model(seed: int = 0, cfg: ModelConfig = VGGT_S_TINY) -> VGGTS:
    """A model of `cfg` (default VGGT_S_TINY) with seeded random weights (the global RNG is left
    untouched), eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VGGTS(cfg).eval()


def make_tiny_checkpoint(path: str | Path, seed: int = 0, cfg: ModelConfig = VGGT_S_TINY) -> Path:
    """Write a seeded random model of `cfg` to `path` (.safetensors) and return the path."""
    return save_model(make_tiny_model(seed, cfg), path)
