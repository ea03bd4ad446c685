"""Pseudo-objects: image-aligned regions of a photograph that stand in for "the object" of a training pair.

A photo is over-segmented once (Felzenszwalb's graph segmentation, so segment borders follow real image
edges); a pseudo-object is one segment or a union of adjacent segments, grown from a random seed segment
to a random target area, that lies mostly inside the source view's window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from vggts_cli.geometry import Box

MIN_AREA, MAX_AREA = 0.01, 0.35  # pseudo-object area, fraction of the source window
INSIDE = 0.85  # a segment counts when at least this fraction of it lies inside the window
SEEDS_PER_WINDOW = 8  # seed segments tried before the caller is asked for another window


@dataclass(frozen=True)
class Segmentation:
    """An over-segmentation of an (H, W) photo into n segments."""

    labels: np.ndarray  # (H, W) int32 in [0, n)
    areas: np.ndarray  # (n,) int64 pixels per segment
    bboxes: np.ndarray  # (n, 4) int64 (x0, y0, x1, y1), end-exclusive
    neighbours: tuple[np.ndarray, ...]  # per segment: the labels of the segments it touches

    @property
    def n(self) -> int:
        return len(self.areas)


def segment(image: np.ndarray) -> Segmentation:
    """Felzenszwalb segmentation of an (H, W, 3) uint8 photo with its areas, boxes and adjacency."""
    from skimage.segmentation import felzenszwalb

    height, width = image.shape[:2]
    labels = felzenszwalb(image, scale=250, sigma=0.8, min_size=max(20, height * width // 1500))
    labels = labels.astype(np.int32)
    n = int(labels.max()) + 1
    areas = np.bincount(labels.ravel(), minlength=n)
    slices = ndimage.find_objects(labels + 1, max_label=n)
    bboxes = np.array([(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in slices], dtype=np.int64)
    return Segmentation(labels, areas, bboxes, _adjacency(labels, n))


def _adjacency(labels: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """Per label, the labels of its 4-connected neighbours."""
    pairs = np.concatenate(
        [
            np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], axis=1),
            np.stack([labels[:-1].ravel(), labels[1:].ravel()], axis=1),
        ]
    )
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = np.unique(np.concatenate([pairs, pairs[:, ::-1]]), axis=0)  # sorted by the first column
    starts = np.searchsorted(pairs[:, 0], np.arange(n + 1))
    return tuple(pairs[starts[i] : starts[i + 1], 1] for i in range(n))


def choose_region(
    seg: Segmentation, window: tuple[int, int, int, int], rng: np.random.Generator
) -> np.ndarray | None:
    """A pseudo-object inside `window` (x0, y0, x1, y1): the labels (K,) of a connected union of segments,
    each mostly inside the window, covering MIN_AREA…MAX_AREA of it; None if these tries found none."""
    x0, y0, x1, y1 = window
    window_area = (x1 - x0) * (y1 - y0)
    inside = np.bincount(seg.labels[y0:y1, x0:x1].ravel(), minlength=seg.n)
    usable = (inside >= INSIDE * seg.areas) & (inside <= MAX_AREA * window_area)
    seeds = np.flatnonzero(usable)
    if len(seeds) == 0:
        return None
    for seed in rng.choice(seeds, size=min(SEEDS_PER_WINDOW, len(seeds)), replace=False):
        goal = window_area * np.exp(rng.uniform(np.log(1.5 * MIN_AREA), np.log(0.85 * MAX_AREA)))
        region, area = _grow(seg, usable, inside, int(seed), goal, MAX_AREA * window_area, rng)
        if area >= MIN_AREA * window_area:
            return region
    return None


def _grow(
    seg: Segmentation,
    usable: np.ndarray,
    inside: np.ndarray,
    seed: int,
    goal: float,
    limit: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """Add random usable neighbours to `seed` until the in-window area reaches `goal` without passing
    `limit`; returns (labels, in-window area)."""
    members = [seed]
    taken = np.zeros(seg.n, dtype=bool)
    taken[seed] = True
    area = int(inside[seed])
    frontier = set(seg.neighbours[seed].tolist())
    while area < goal:
        options = [label for label in frontier if usable[label] and not taken[label]]
        options = [label for label in options if area + inside[label] <= limit]
        if not options:
            break
        label = options[int(rng.integers(len(options)))]
        members.append(label)
        taken[label] = True
        area += int(inside[label])
        frontier.update(seg.neighbours[label].tolist())
    return np.array(members, dtype=np.int64), area


def region_mask(seg: Segmentation, region: np.ndarray) -> tuple[np.ndarray, Box]:
    """The (H, W) bool mask of the segments `region` (K,) and its box."""
    boxes = seg.bboxes[region]
    x0, y0 = (int(v) for v in boxes[:, :2].min(0))
    x1, y1 = (int(v) for v in boxes[:, 2:].max(0))
    member = np.zeros(seg.n, dtype=bool)
    member[region] = True
    mask = np.zeros(seg.labels.shape, dtype=bool)
    mask[y0:y1, x0:x1] = member[seg.labels[y0:y1, x0:x1]]
    return mask, Box(x0, y0, x1, y1)
