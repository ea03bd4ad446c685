"""What redaction covers in each frame: over-cover rather than leak wherever the engine is unsure.

A frame's mask is *sure* when it is non-empty, its presence score is at least `redact_min_score`, and it is
not much smaller (under `redact_shrink` of the area) than the last sure mask. An unsure frame within
`redact_hold` frames after the last sure one, or before the next, also covers that sure mask, grown by how
far the object moved per frame times the frames between ("held over"): the object was just seen, or is
about to be (propagation also runs backward, so a camera may find the object late). Every frame then
covers the union of its own and its `redact_spread` neighbours' contributions on each side, grown by a
margin that follows the frame size, the object's size (`redact_grow` of its longer side) and its motion
(the largest per-frame move of a bounding-box edge in that window).

`Cover` is streaming: frames go in with `push` and come out `redact_hold + redact_spread` frames later, so
a video of any length needs only that many masks in memory. `Covers` does the same for several objects at
once (each object held over on its own; a frame covers the union).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

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
class Seen:
    """One frame as the hold-over saw it: its (H, W) bool mask, whether it is sure, the object's motion,
    and where unsure, the last sure mask (H, W) bool within the hold and how far to grow it (px)."""

    index: int
    mask: np.ndarray
    box: Box | None
    sure: bool
    motion: float  # px per frame: the largest move of a bounding-box edge between the last sure masks
    before: tuple[np.ndarray, Box, int] | None  # (last sure mask, its box, growth px) where unsure


@dataclass
class Contribution:
    """What one frame adds to the cover: (H, W) bool mask (None: nothing), its box, the motion, held."""

    index: int
    mask: np.ndarray | None
    box: Box | None
    motion: float
    held: bool


def edge_motion(a: Box, b: Box, frames: int) -> float:
    """Largest move of one bounding-box edge from `a` to `b`, per frame, over `frames` >= 1 frames."""
    moves = (abs(a.x0 - b.x0), abs(a.x1 - b.x1), abs(a.y0 - b.y0), abs(a.y1 - b.y1))
    return max(moves) / max(1, frames)


class HoldOver:
    """Decides per frame, in order, whether the mask is sure, and which earlier sure mask an unsure one
    holds over."""

    def __init__(self, options: SinkOptions) -> None:
        self._options = options
        self._sure: Seen | None = None
        self._area = 0
        self._motion = 0.0

    def see(self, index: int, mask: np.ndarray, score: float) -> Seen:
        """Frame `index`'s (H, W) bool `mask` and its presence score, judged against the last sure mask."""
        options = self._options
        box = bbox(mask)
        if self._sure is not None and index - self._sure.index > options.redact_hold:
            self._sure = None  # too long ago: the next confident mask starts afresh
        area = int(np.count_nonzero(mask)) if box is not None else 0
        sure = box is not None and score >= options.redact_min_score
        if sure and self._sure is not None:
            sure = area >= options.redact_shrink * self._area
        if sure:
            assert box is not None
            if self._sure is not None:
                assert self._sure.box is not None
                self._motion = edge_motion(self._sure.box, box, index - self._sure.index)
            self._sure, self._area = Seen(index, mask, box, True, self._motion, None), area
            return self._sure
        before = None
        if self._sure is not None:
            assert self._sure.box is not None
            before = (self._sure.mask, self._sure.box, round(self._motion * (index - self._sure.index)))
        return Seen(index, mask, box, False, self._motion, before)


def held_over(seen: Seen, after: Seen | None, shape: tuple[int, int]) -> Contribution:
    """Frame `seen`'s contribution: its own mask, and where it is unsure the sure masks held over from
    before (`seen.before`) and from `after` (the next sure frame within the hold, or None), each grown by
    the object's motion times the frames between."""
    parts = [(seen.mask, seen.box, 0)] if seen.box is not None else []
    if not seen.sure:
        if seen.before is not None:
            parts.append(seen.before)
        if after is not None:
            assert after.box is not None
            parts.append((after.mask, after.box, round(after.motion * (after.index - seen.index))))
    if not parts:
        return Contribution(seen.index, None, None, seen.motion, held=False)
    held = len(parts) > (seen.box is not None)
    mask, box = np.zeros(shape, dtype=bool), None
    for part, part_box, reach in parts:
        mask |= dilate(part, reach) if reach else part
        grown = part_box.grow(reach, *shape)
        box = grown if box is None else box.union(grown)
    return Contribution(seen.index, mask, box, seen.motion, held)


class Cover:
    """Streaming cover of one camera's frames; see the module docstring for the rules.

    A frame's cover is known `redact_hold + redact_spread` frames after it: an unsure frame also holds the
    next sure mask within the hold, and each frame covers its neighbours' contributions.
    """

    def __init__(self, options: SinkOptions, width: int, height: int) -> None:
        self._options = options
        self._shape = (height, width)
        self._base_margin = options.margin_for(width, height)
        self._hold = HoldOver(options)
        self._seen: deque[Seen] = deque()  # frames whose contribution waits for later sure masks
        self._window: deque[Contribution] = deque()  # contributions of frames index - spread .. newest
        self._next_out = 0

    def push(self, index: int, mask: np.ndarray, score: float) -> list[CoverFrame]:
        """Add frame `index` ((H, W) bool mask, score); returns the frames whose cover is now known."""
        self._seen.append(self._hold.see(index, mask, score))
        while self._seen and self._seen[0].index <= index - self._options.redact_hold:
            self._settle()
        ready = []
        while self._window and self._next_out <= self._window[-1].index - self._options.redact_spread:
            ready.append(self._emit())
        return ready

    def flush(self) -> list[CoverFrame]:
        """The covers of the frames still waiting for later frames (the video has ended)."""
        while self._seen:
            self._settle()
        ready = []
        while self._window and self._next_out <= self._window[-1].index:
            ready.append(self._emit())
        return ready

    def _settle(self) -> None:
        """Turn the oldest waiting frame into its contribution (every frame within its hold is in)."""
        seen = self._seen.popleft()
        after = None
        if not seen.sure:
            hold = self._options.redact_hold
            after = next((s for s in self._seen if s.sure and s.index - seen.index <= hold), None)
            if after is not None:
                # The first sure frame knows no motion yet; the sure frames after it do.
                motion = max(s.motion for s in self._seen if s.sure and s.index - seen.index <= 2 * hold)
                after = replace(after, motion=max(after.motion, motion))
        self._window.append(held_over(seen, after, self._shape))

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


class Covers:
    """`Cover` of each of several objects of one camera (`objects`: their indices in the masks pushed);
    a frame's cover is the union of theirs. Every object's cover of a frame is known at the same time."""

    def __init__(self, options: SinkOptions, width: int, height: int, objects: Sequence[int]) -> None:
        self._objects = tuple(objects)
        self._covers = [Cover(options, width, height) for _ in self._objects]

    def push(self, index: int, masks: np.ndarray, scores: Sequence[float]) -> list[CoverFrame]:
        """Add frame `index` ((O, H, W) bool masks, their scores); the frames whose cover is now known."""
        masks = masks[None] if masks.ndim == 2 else masks  # one object: (H, W) and a float will do
        scores = np.atleast_1d(scores)
        ready = [c.push(index, masks[o], scores[o]) for c, o in zip(self._covers, self._objects, strict=True)]
        return [union_cover(frame) for frame in zip(*ready, strict=True)]

    def flush(self) -> list[CoverFrame]:
        """The covers of the frames still waiting (the video has ended)."""
        return [union_cover(frame) for frame in zip(*(c.flush() for c in self._covers), strict=True)]


def union_cover(covers: Sequence[CoverFrame]) -> CoverFrame:
    """Several objects' covers of one frame as one: the union of their regions, held where any is."""
    first = covers[0]
    held = any(c.held for c in covers)
    regions = [c.region for c in covers if c.region is not None]
    if len(covers) == 1 or not regions:
        return CoverFrame(first.index, regions[0] if regions else None, held)
    box = regions[0][0]
    for other, _ in regions[1:]:
        box = box.union(other)
    crop = np.zeros((box.height, box.width), dtype=bool)
    for part, region in regions:
        crop[part.y0 - box.y0 : part.y1 - box.y0, part.x0 - box.x0 : part.x1 - box.x0] |= region
    return CoverFrame(first.index, (box, crop), held)


# frame index -> (masks (O, H, W) bool, their scores)
Upcoming = Callable[[int], tuple[np.ndarray, Sequence[float]]]


class AheadCover:
    """`Covers` of `objects` fed from `upcoming` ahead of the frames (the render stage knows every mask from
    the journal), so that a frame's cover is known when the frame arrives and no frame waits in memory."""

    def __init__(
        self,
        options: SinkOptions,
        width: int,
        height: int,
        frames: int,
        upcoming: Upcoming,
        objects: Sequence[int] = (0,),
    ) -> None:
        self._cover = Covers(options, width, height, objects)
        self._delay = options.redact_hold + options.redact_spread
        self._frames = frames
        self._upcoming = upcoming
        self._fed = 0
        self._ready: deque[CoverFrame] = deque()

    def at(self, index: int) -> CoverFrame:
        """The cover of frame `index`; call for 0, 1, 2, … in order."""
        end = min(self._frames, index + self._delay + 1)
        while self._fed < end:
            self._ready.extend(self._cover.push(self._fed, *self._upcoming(self._fed)))
            self._fed += 1
            if self._fed == self._frames:
                self._ready.extend(self._cover.flush())
        cover = self._ready.popleft()
        if cover.index != index:
            raise ValueError(f"cover of frame {index} asked out of order (next is {cover.index})")
        return cover
