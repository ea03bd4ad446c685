"""The defaults of a training run, in one place: `TrainConfig` and `vggts train` both read them (this module
imports nothing heavy, so the command line can show them without loading torch)."""

from __future__ import annotations

MODEL = "vggt-s-lite"
STEPS = 20_000
BATCH_SIZE = 8
LR = 1e-3
SEED = 0
FOCAL_ALPHA = 0.25  # SAM's; None weighs object and background pixels alike
MIX = {"adaptive": 0.3, "non_adaptive": 0.3, "rig": 0.4}  # share of each pair kind


def mix_text(mix: dict[str, float] = MIX) -> str:
    """{"adaptive": 0.3, ...} -> "adaptive=0.3,..." (what `--mix` takes)."""
    return ",".join(f"{name}={weight:g}" for name, weight in mix.items())
