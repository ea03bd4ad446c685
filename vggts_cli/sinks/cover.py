"""What redaction covers in each frame: over-cover rather than leak wherever the engine is unsure.

A frame's mask is *sure* when it is non-empty, its presence score is at least `redact_min_score`, and it is
not much smaller (under `redact_shrink` of the area) than the last sure mask. An unsure frame within
`redact_hold` frames of the last sure one also covers that sure mask, grown by how far the object moved
per frame times the frames since ("held over"). Every frame then covers the union of its own and its
`redact_spread` neighbours' contributions on each side, grown by a margin that follows the frame size,
the object's size (`redact_grow` of its longer side) and its motion (the largest per-frame move of a
bounding-box edge in that window).

`Cover` is streaming: frames go in with `push` and come out `redact_spread` frames later, so a video of any
length needs only a few masks in memory.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from vggts_cli.geometry import Box, bbox
from vggts_cli.masks.ops import dilate, dilated_union
from vggts_cli.sinks.base import SinkOptions


@dataclass(frozen=True)
class CoverFrame:
    """One frame's cover: `region` is (box, (box.height, box.width) bool) or None (nothing to cover);
    `held` says that a held-over mask is part of it (the engine was unsure here)."""

    index: int
    region: tuple[Box, np.ndarray] | None
    held: bool

    def full(self, height: int, width: int) -> np.ndarray:
        """The region as an (height, width) bool mask."""
        out = np.zeros((height, width), dtype=bool)
        if self.region is not None:
            box, crop = self.region
            out[box.slices] = crop
        return out


@dataclass
class Contribution:
    index: int
    mask: np.ndarray | None  # (H, W) bool: the frame's own mask, with a held-over mask where unsure
    box: Box | None
    motion: float  # px per frame: the largest move of a bounding-box edge between the last sure masks
    held: bool


def edge_motion(a: Box, b: Box, frames: int) -> float:
    """Largest move of one bounding-box edge from `a` to `b`, per frame, over `frames` >= 1 frames."""
    moves = (abs(a.x0 - b.x0), abs(a.x1 - b.x1), abs(a.y0 - b.y0), abs(a.y1 - b.y1))
    return max(moves) / max(1, frames)


class HoldOver:
    """Decides per frame whether the mask is sure, and what a held-over mask adds where it is not."""

    def __init__(self, options: SinkOptions) -> None:
        self._options = options
        self._sure: tuple[int, np.ndarray, Box, int] | None = None  # index, mask, box, area
        self._motion = 0.0

    def contribution(self, index: int, mask: np.ndarray, score: float) -> Contribution:
        """Frame `index`'s (H, W) bool `mask` and score -> what it contributes to the cover."""
        options = self._options
        box = bbox(mask)
        if self._sure is not None and index - self._sure[0] > options.redact_hold:
            self._sure = None  # too long ago: the next confident mask starts afresh
        area = int(np.count_nonzero(mask)) if box is not None else 0
        sure = box is not None and score >= options.redact_min_score
        if sure and self._sure is not None:
            sure = area >= options.redact_shrink * self._sure[3]
        if sure:
            if self._sure is not None:
                self._motion = edge_motion(self._sure[2], box, index - self._sure[0])
            self._sure = (index, mask, box, area)
            return Contribution(index, mask, box, self._motion, held=False)
        if self._sure is None:
            return Contribution(index, mask if box is not None else None, box, self._motion, held=False)
        since, held_mask, held_box, _ = self._sure
        reach = round(self._motion * (index - since))
        union = dilate(held_mask, reach)
        union_box = held_box.grow(reach, *mask.shape)
        if box is not None:
            union |= mask
            union_box = union_box.union(box)
        return Contribution(index, union, union_box, self._motion, held=True)


class Cover:
    """Streaming cover of one camera's frames; see the module docstring for the rules."""

    def __init__(self, options: SinkOptions, width: int, height: int) -> None:
        self._options = options
        self._base_margin = options.margin_for(width, height)
        self._hold = HoldOver(options)
        self._window: deque[Contribution] = deque()  # contributions of frames index - spread .. newest
        self._next_out = 0

    def push(self, index: int, mask: np.ndarray, score: float) -> list[CoverFrame]:
        """Add frame `index` ((H, W) bool mask, score); returns the frames whose cover is now known."""
        self._window.append(self._hold.contribution(index, mask, score))
        ready = []
        while self._next_out <= index - self._options.redact_spread:
            ready.append(self._emit())
        return ready

    def flush(self) -> list[CoverFrame]:
        """The covers of the frames still waiting for later neighbours (the video has ended)."""
        ready = []
        while self._window and self._next_out <= self._window[-1].index:
            ready.append(self._emit())
        return ready

    def _emit(self) -> CoverFrame:
        index, spread = self._next_out, self._options.redact_spread
        while self._window and self._window[0].index < index - spread:
            self._window.popleft()
        near = [c for c in self._window if abs(c.index - index) <= spread]
        self._next_out += 1
        held = any(c.held for c in near if c.index == index)
        masks = [c.mask for c in near if c.mask is not None]
        if not masks:
            return CoverFrame(index, None, held)
        box = None
        for c in near:
            if c.box is not None:
                box = c.box if box is None else box.union(c.box)
        assert box is not None
        motion = max(c.motion for c in near)
        margin = self._base_margin + round(
            self._options.redact_grow * max(box.width, box.height) + self._options.redact_motion * motion
        )
        return CoverFrame(index, dilated_union(masks, margin), held)
