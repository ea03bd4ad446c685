"""Engines by name, for `--engine`."""

from __future__ import annotations

from vggts_cli.engine.base import Engine
from vggts_cli.errors import UsageError

ENGINES = ("classic", "vggts")
DEFAULT_ENGINE = "classic"


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
