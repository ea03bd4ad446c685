"""The order in which frames are segmented, and which references each one gets.

Cameras are aligned by world time (presentation time + the camera's offset), never by frame index. Every
frame of every other camera is attached to the seed camera's frame nearest to it in world time. The walk
starts at the seed frame, goes forward to the end, then backward from the seed to the start (with prompts
on the seed camera, each of them and the seed starts its own pair of legs, covering the frames nearest to
it); at each seed-camera frame, the frames of the other cameras attached to it follow it. So a frame's
references are always already known: the seed (long-term anchor), its own camera's previous frame in the
walk (temporal) and, for other cameras, the seed camera at the same instant (cross).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vggts_cli.video.sync import nearest_frames


@dataclass(frozen=True)
class Step:
    """One seed-camera frame and, per other camera, the frames attached to it in walk order.

    `direction` is +1 on the forward leg (seed frame included) and -1 on the backward leg.
    """

    seed_index: int
    others: tuple[tuple[int, ...], ...]
    direction: int


def plan_legs(
    seed_times: np.ndarray, other_times: Sequence[np.ndarray], anchors: Sequence[int]
) -> list[list[Step]]:
    """The walk over all frames as legs, each a list of steps in order: per anchor (the seed frame and the
    seed camera's prompt frames, ascending), a forward leg from it (itself included) up to halfway to the
    next anchor (or the end), then a backward leg from the frame before it down to halfway to the one
    before (or the start). So every seed-camera frame comes from its nearest anchor.

    seed_times: (T,) world times of the seed camera; other_times: one (T_c,) array per other camera.
    Every frame of every camera appears in exactly one step.
    """
    attached = [nearest_frames(seed_times, times) for times in other_times]
    # Per camera, frames grouped by the seed frame they attach to (attachment is monotonic in time).
    starts = [np.searchsorted(a, np.arange(len(seed_times) + 1), side="left") for a in attached]

    def step(i: int, direction: int) -> Step:
        groups = []
        for start in starts:
            frames = range(int(start[i]), int(start[i + 1]))
            groups.append(tuple(frames if direction > 0 else reversed(frames)))
        return Step(i, tuple(groups), direction)

    anchors = sorted(anchors)
    bounds = [0, *((a + b + 1) // 2 for a, b in zip(anchors, anchors[1:], strict=False)), len(seed_times)]
    legs = []
    for n, anchor in enumerate(anchors):
        legs.append([step(i, +1) for i in range(anchor, bounds[n + 1])])
        backward = [step(i, -1) for i in range(anchor - 1, bounds[n] - 1, -1)]
        if backward:
            legs.append(backward)
    return legs
