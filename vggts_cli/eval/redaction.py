"""Redaction leaks against exact masks: what `redacted.mp4` would leave visible, and what it over-covers.

A frame *leaks* when more than `LEAK_FRACTION` of the object's visible pixels lie outside the region the
redaction covers (sinks/cover.py, the same code `RedactSink` uses). Over-coverage is the covered area over
the true area, summed over the frames where the object is visible.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vggts_cli.masks import rle
from vggts_cli.sinks.base import SinkOptions
from vggts_cli.sinks.cover import Cover, CoverFrame

LEAK_FRACTION = 0.05


@dataclass
class LeakStats:
    """Leaked frames of `visible` frames (object visible), and the covered and true pixel sums."""

    leaked: int = 0
    visible: int = 0
    covered_px: int = 0
    true_px: int = 0
    worst_px: int = 0  # most object pixels left uncovered in one frame
    touched: int = 0  # frames with any object pixel uncovered

    @property
    def over_coverage(self) -> float:
        """Covered area / true area over the visible frames (1.0 = exact, higher = more covered)."""
        return self.covered_px / self.true_px if self.true_px else 0.0

    def add(self, truth: np.ndarray, cover: np.ndarray) -> None:
        """Count one frame: (H, W) bool exact mask and (H, W) bool covered region."""
        true_px = int(np.count_nonzero(truth))
        if true_px == 0:
            return
        uncovered = int(np.count_nonzero(truth & ~cover))
        self.visible += 1
        self.leaked += uncovered > LEAK_FRACTION * true_px
        self.covered_px += int(np.count_nonzero(cover))
        self.true_px += true_px
        self.worst_px = max(self.worst_px, uncovered)
        self.touched += uncovered > 0


def covers(
    frames: Iterable[tuple[np.ndarray, float]], options: SinkOptions, width: int, height: int
) -> Iterator[CoverFrame]:
    """The cover of every frame, in order, for (mask (H, W) bool, score) per frame."""
    cover = Cover(options, width, height)
    for index, (mask, score) in enumerate(frames):
        yield from cover.push(index, mask, score)
    yield from cover.flush()


def read_masks(path: Path) -> tuple[int, int, list[tuple[np.ndarray, float]]]:
    """masks.json -> (width, height, [(mask (H, W) bool, score) per frame])."""
    data = json.loads(path.read_text(encoding="utf-8"))
    frames = [(rle.decode(r["segmentation"]), float(r["score"])) for r in data["frames"]]
    return int(data["width"]), int(data["height"]), frames


def measure(masks_json: Path, truth: Callable[[int], np.ndarray], options: SinkOptions) -> LeakStats:
    """Leak statistics of redacting the masks in `masks_json` with `options`; truth(i) is frame i's exact
    (H, W) bool mask."""
    width, height, frames = read_masks(masks_json)
    stats = LeakStats()
    for cover in covers(frames, options, width, height):
        stats.add(truth(cover.index), cover.full(height, width))
    return stats
