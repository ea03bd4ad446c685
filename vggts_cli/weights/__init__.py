"""The models that ship inside the package, and what they scored (RECIPE.md tells how they were made)."""

from __future__ import annotations

from pathlib import Path

SHIPPED_MODELS = Path(__file__).resolve().parent
# The model used when none is named: `vggt-s-lite`, trained by `vggts train` (RECIPE.md).
DEFAULT_MODEL = "vggt-s-lite"
# `vggts eval rendered --engine classic --engine vggts --json` of the shipped model, kept beside it.
VALIDATION_RESULTS = SHIPPED_MODELS / "validation.json"
# Per engine, its mean score on our real validation footage; the default engine is the best of them.
REAL_VALIDATION_RESULTS = SHIPPED_MODELS / "real_validation.json"


def shipped_model_path(name: str = DEFAULT_MODEL) -> Path:
    """Where the package keeps a shipped model file."""
    return SHIPPED_MODELS / f"{name}.safetensors"
