"""Our own rendered validation scenes, by tier: every engine, both directions, the paper's and Ego-Exo4D's
metrics, and the engine's time per pair.

Each tier (`vggts_cli.synth.rig.TIERS`: easy / medium / hard by viewpoint change, scale ratio, occlusion and
distractors) has its own validation seeds, which no training run draws. A rendered pair is one ego and one
exo frame of the same instant with exact visible masks. As in Ego-Exo4D, a pair is a query when the object
is visible in the source view; its target may be empty, which only the visibility accuracy scores. The
paper's mIoU takes the pairs visible in both views, at the target's own size; the Ego-Exo4D metrics see
the masks at the evaluator's size.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from vggts_cli.engines.base import Engine, Reference, View
from vggts_cli.errors import UsageError
from vggts_cli.eval.egoexo import DIRECTIONS
from vggts_cli.eval.metrics import ScoreSheet, iou, to_eval_size


@dataclass
class Cell:
    """One engine in one direction of one tier: its score sheet and engine seconds per query."""

    sheet: ScoreSheet = field(default_factory=ScoreSheet)
    seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        result = self.sheet.summary()
        result["seconds_per_pair"] = float(np.mean(self.seconds)) if self.seconds else None
        return result


def parse_tiers(text: str) -> list[str]:
    """`"easy,hard"` -> ["easy", "hard"], checked against the rig's tiers."""
    from vggts_cli.synth.rig import TIERS

    tiers = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in tiers if t not in TIERS]
    if not tiers or unknown:
        raise UsageError(f"--tiers takes a comma list of {', '.join(TIERS)}, got {text!r}")
    return list(dict.fromkeys(tiers))


def directed_views(pair, direction: str) -> tuple[View, np.ndarray, View, np.ndarray]:
    """(source view, source mask, target view, target mask) of a rig pair in `direction`."""
    ego, exo = View("ego", 0, pair.ego), View("exo", 0, pair.exo)
    if direction == "ego-exo":
        return ego, pair.ego_mask, exo, pair.exo_mask
    return exo, pair.exo_mask, ego, pair.ego_mask


def score_query(
    cell: Cell, engine: Engine, source: View, source_mask: np.ndarray, target: View, truth
) -> None:
    """Ask `engine` for the object in `target` and put the result on `cell`'s sheet."""
    start = time.perf_counter()
    engine.start([Reference(source, source_mask, "seed")])  # the job's seed, seen from another camera
    prediction = engine.segment(target, [Reference(source, source_mask, "cross")])
    cell.seconds.append(time.perf_counter() - start)
    if not truth.any():
        cell.sheet.add_absent(prediction.score)
        return
    cell.sheet.add_visible(to_eval_size(truth), to_eval_size(prediction.mask), prediction.score)
    cell.sheet.add_visible_pair(iou(truth, prediction.mask))


def queries_per_pair(wide: bool) -> int:
    """Engine calls per pair, direction and engine: the pair's own target, and with `wide` an absent one."""
    return 2 if wide else 1


def evaluate_rendered(
    engines: dict[str, Engine],
    tiers: Sequence[str],
    pairs: int,
    on_query: Callable[[int], None] = lambda n: None,
    wide: bool = False,
) -> dict:
    """Render `pairs` validation pairs per tier and score every engine on them in both directions.

    `wide`: the widened validation — each pair seen through camera looks beyond the training generator's
    ranges (synth/wide.py), and every query asked a second time of the next pair's target view, a scene
    without the object, so that the visibility accuracy weighs "absent" as much as "there".

    Returns `{"pairs", "tiers", "directions", "engines", "wide", "results": {tier: {direction: {engine:
    summary}}}}` where a summary is `ScoreSheet.summary()` plus `seconds_per_pair`; `on_query` is called
    after each engine call (tiers × pairs × directions × engines × queries_per_pair(wide) of them, fewer
    where a source view is empty).
    """
    from vggts_cli.synth.rig import render_rig_pair, validation_seeds

    results: dict[str, dict] = {}
    for tier in tiers:
        cells = {d: {name: Cell() for name in engines} for d in DIRECTIONS}
        seeds = validation_seeds(tier, pairs)
        rendered = [render_rig_pair(seed, tier, wide=wide) for seed in seeds]
        for k, pair in enumerate(rendered):
            for direction in DIRECTIONS:
                source, source_mask, target, truth = directed_views(pair, direction)
                targets = [(target, truth)]
                if wide:
                    other = directed_views(rendered[(k + 1) % len(rendered)], direction)[2]
                    targets.append((other, np.zeros(other.image.shape[:2], bool)))
                for name, engine in engines.items():
                    for view, mask in targets:
                        if source_mask.any():  # a query needs the object in the source view
                            score_query(cells[direction][name], engine, source, source_mask, view, mask)
                        on_query(1)
        results[tier] = {d: {name: cell.summary() for name, cell in cells[d].items()} for d in DIRECTIONS}
    return {
        "pairs": pairs,
        "tiers": list(tiers),
        "directions": list(DIRECTIONS),
        "engines": list(engines),
        "wide": wide,
        "results": results,
    }
