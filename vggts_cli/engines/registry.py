"""Engines by name, for `--engine`, and which one is the default."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence

from vggts_cli.engines.base import Engine
from vggts_cli.errors import UsageError
from vggts_cli.weights import REAL_VALIDATION_RESULTS

ENGINES = ("classic", "vggts")


def default_engine() -> str:
    """The engine with the best mean score over our real validation footage (weights/real_validation.json,
    written by `vggts eval vos` / `vggts eval pairs`), classic while no real score says otherwise.

    Our rendered scenes do not decide it: the shipped model led there and lost the object on real video.
    """
    try:
        results = json.loads(REAL_VALIDATION_RESULTS.read_text())["results"]
        scores: dict[str, list[float]] = {}
        for engines in results.values():
            for name, cell in engines.items():
                scores.setdefault(name, []).append(float(cell["score"]))
    except (OSError, ValueError, KeyError, TypeError):
        return "classic"
    ranked = [name for name in scores if name in ENGINES]
    return max(ranked, key=lambda name: statistics.fmean(scores[name]), default="classic")


def check_model(engines: Sequence[str], model: str | None, flag: str = "--") -> None:
    """A model serves the learned engine only: refuse one given without it (`flag`: how options are
    spelled where it came from, "--" on the command line, "" in a batch manifest)."""
    if model is not None and "vggts" not in engines:
        raise UsageError(f"{flag}model applies to {flag}engine vggts; the classic engine has no weights")


def make_engine(
    name: str, model: str | None = None, device: str = "auto", schedule: str = "windowed"
) -> Engine:
    """Build the engine `name`; `model` (a name or a model file; None = the shipped default), `device` and
    `schedule` ("windowed" or "pair", see engines/learned/engine.py) serve the learned engine."""
    if name == "classic":
        check_model([name], model)
        from vggts_cli.engines.classic.engine import ClassicEngine

        return ClassicEngine()
    if name == "vggts":
        from vggts_cli.engines.learned.engine import LearnedEngine

        return LearnedEngine.load(model, device, schedule)  # type: ignore[arg-type]
    raise UsageError(f"--engine {name!r} is not one of {', '.join(ENGINES)}")
