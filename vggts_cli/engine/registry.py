"""Engines by name, for `--engine`, and which one is the default."""

from __future__ import annotations

import json
import statistics

from vggts_cli.engine.base import Engine
from vggts_cli.errors import UsageError
from vggts_cli.weights import VALIDATION_RESULTS, shipped_model_path

ENGINES = ("classic", "vggts")


def default_engine() -> str:
    """The engine with the best mean paper-protocol mIoU over every tier and direction of our rendered
    validation scenes, as measured for the shipped model (weights/validation.json); classic when no model
    ships or it was not scored."""
    if not shipped_model_path().is_file():
        return "classic"
    try:
        results = json.loads(VALIDATION_RESULTS.read_text())["results"]
        scores: dict[str, list[float]] = {}
        for directions in results.values():
            for engines in directions.values():
                for name, cell in engines.items():
                    scores.setdefault(name, []).append(float(cell["visible_miou"]))
    except (OSError, ValueError, KeyError, TypeError):
        return "classic"
    ranked = [name for name in scores if name in ENGINES]
    return max(ranked, key=lambda name: statistics.fmean(scores[name]), default="classic")


def make_engine(
    name: str, model: str | None = None, device: str = "auto", schedule: str = "windowed"
) -> Engine:
    """Build the engine `name`; `model` (a name or a model file; None = the shipped default), `device` and
    `schedule` ("windowed" or "pair", see engine/learned.py) serve the learned engine."""
    if name == "classic":
        if model is not None:
            raise UsageError("--model applies to --engine vggts; the classic engine has no weights")
        from vggts_cli.engine.classic import ClassicEngine

        return ClassicEngine()
    if name == "vggts":
        from vggts_cli.engine.learned import LearnedEngine

        return LearnedEngine.load(model, device, schedule)  # type: ignore[arg-type]
    raise UsageError(f"--engine {name!r} is not one of {', '.join(ENGINES)}")
