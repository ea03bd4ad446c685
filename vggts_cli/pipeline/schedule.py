"""The order in which frames are segmented, and which references each one gets.

Cameras are aligned by world time (presentation time + the camera's offset), never by frame index. Every
frame of every other camera is attached to the seed camera's frame nearest to it in world time. The walk
starts at the seed frame, goes forward to the end, then backward from the seed to the start; at each
seed-camera frame, the frames of the other cameras attached to it follow it. So a frame's references are
always already known: the seed (long-term anchor), its own camera's previous frame in the walk (temporal)
and, for other cameras, the seed camera at the same instant (cross).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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


def plan_steps(seed_times: np.ndarray, other_times: Sequence[np.ndarray], seed_frame: int) -> Iterator[Step]:
    """Yield the walk over all frames: forward from `seed_frame`, then backward.

    seed_times: (T,) world times of the seed camera; other_times: one (T_c,) array per other camera.
    Every frame of every camera appears in exactly one step.
    """
    attached = [nearest_frames(seed_times, times) for times in other_times]
    # Per camera, frames grouped by the seed frame they attach to (attachment is monotonic in time).
    starts = [np.searchsorted(a, np.arange(len(seed_times) + 1), side="left") for a in attached]

    def group(i: int, direction: int) -> tuple[tuple[int, ...], ...]:
        groups = []
        for start in starts:
            frames = range(int(start[i]), int(start[i + 1]))
            groups.append(tuple(frames if direction > 0 else reversed(frames)))
        return tuple(groups)

    for i in range(seed_frame, len(seed_times)):
        yield Step(i, group(i, +1), +1)
    for i in range(seed_frame - 1, -1, -1):
        yield Step(i, group(i, -1), -1)
