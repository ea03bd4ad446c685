"""Engines by name, for `--engine`, and which one is the default."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence

from vggts_cli.engines.base import Engine
from vggts_cli.engines.learned import ADAPT_STEPS
from vggts_cli.errors import UsageError
from vggts_cli.weights import REAL_VALIDATION_RESULTS

ENGINES = ("classic", "vggts")
DETAILS = ("normal", "fine")  # the classic engine's working size: fixed, or grown for small objects


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


def check_model(
    engines: Sequence[str],
    model: str | None,
    flag: str = "--",
    adapt: int | None = None,
    detail: str | None = None,
) -> None:
    """A model and its tuning serve the learned engine only, a detail level the classic engine only: refuse
    them given without it (`flag`: how options are spelled where they came from, "--" on the command line,
    "" in a batch manifest)."""
    if detail is not None:
        if detail not in DETAILS:
            raise UsageError(f"{flag}detail {detail!r} is not one of {', '.join(DETAILS)}")
        if "classic" not in engines:
            raise UsageError(
                f"{flag}detail applies to {flag}engine classic; the learned engine's input size is its "
                "model's"
            )
    if "vggts" in engines:
        if adapt is not None and adapt < 0:
            raise UsageError(f"{flag}adapt {adapt}: steps must be 0 (off) or more")
        return
    if model is not None:
        raise UsageError(f"{flag}model applies to {flag}engine vggts; the classic engine has no weights")
    if adapt is not None:
        raise UsageError(f"{flag}adapt applies to {flag}engine vggts; the classic engine has nothing to tune")


def make_engine(
    name: str,
    model: str | None = None,
    device: str = "auto",
    schedule: str = "windowed",
    adapt: int | None = None,
    detail: str | None = None,
) -> Engine:
    """Build the engine `name`; `model` (a name or a model file; None = the shipped default), `device`,
    `schedule` ("windowed" or "pair", see engines/learned/engine.py) and `adapt` (steps of tuning to each
    job's masks; None = ADAPT_STEPS) serve the learned engine, `detail` (one of DETAILS; None = "normal")
    the classic one."""
    check_model([name], model, adapt=adapt, detail=detail)
    if name == "classic":
        from vggts_cli.engines.classic.engine import FINE_OBJECT_PX, ClassicEngine

        return ClassicEngine(object_px=FINE_OBJECT_PX if detail == "fine" else None)
    if name == "vggts":
        from vggts_cli.engines.learned.adapt import AdaptConfig
        from vggts_cli.engines.learned.engine import LearnedEngine

        tuning = AdaptConfig(steps=ADAPT_STEPS if adapt is None else adapt)
        return LearnedEngine.load(model, device, schedule, adapt=tuning)  # type: ignore[arg-type]
    raise UsageError(f"--engine {name!r} is not one of {', '.join(ENGINES)}")
