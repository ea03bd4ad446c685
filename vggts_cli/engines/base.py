"""What every segmentation engine receives and returns.

The propagation loop (pipeline/run.py) walks the cameras over time and asks an engine, for one target
frame at a time, to find the object given a few reference frames whose masks are known.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

ReferenceKind = Literal["seed", "prompt", "temporal", "cross"]


@dataclass(frozen=True)
class View:
    """One decoded frame of one camera: `image` is (H, W, 3) uint8 RGB in display orientation."""

    camera: str
    index: int
    image: np.ndarray


@dataclass(frozen=True)
class Reference:
    """A frame whose object mask is known: `mask` is (H, W) bool at that frame's own size.

    kind: "seed" — the user's mask (a long-term anchor, never drifts); "prompt" — another of the user's
    masks, on another frame or camera (an anchor like the seed, but not the job's seed frame); "temporal" —
    the previous processed frame of the target's own camera; "cross" — another camera at the target's
    instant.
    """

    view: View
    mask: np.ndarray
    kind: ReferenceKind


FrameState = dict[str, Any]  # JSON-able: what an engine carries from one frame to the next


@dataclass(frozen=True)
class Prediction:
    """The target's mask, (H, W) bool at the target frame's size, and a presence score in [0, 1].

    `state`: what the engine carried forward from this frame (JSON-able, e.g. the learned engine's focus
    crop); the journal records it and `Engine.replay` gives it back on `--resume`. None: nothing.
    """

    mask: np.ndarray
    score: float
    state: FrameState | None = None


class Engine(ABC):
    """A way of finding the object in a target frame from reference frames.

    `window`: the backbone window — how many upcoming target frames the caller should announce at a time
    with `prepare`.

    A job with several objects asks `for_objects` for one engine per object, gives each the references of
    its object (`segment_objects`, on the first), and all of them see the same `prepare` announcements.

    `--resume` contract: an engine's masks depend only on its inputs and on the `state` of the predictions
    it made before, never on which frames were computed together (batches of a fixed size) or on what its
    caches happen to hold. A resumed job calls `replay` for every frame the journal holds, in walk order,
    instead of `segment`, and so continues exactly where an uninterrupted run would be.
    """

    name: str
    window: int = 1

    def for_objects(self, count: int) -> list[Engine]:
        """Engines for the `count` objects of one job, this one first: each carries its own object's state
        from frame to frame, and they share the per-frame work (which does not depend on the mask). The
        default, for engines that carry nothing per object: this engine for every object."""
        return [self] * count

    def start(self, anchors: Sequence[Reference]) -> None:  # noqa: B027 (optional hook)
        """A job begins (on `--resume` too), before any `prepare` or `segment` of it: `anchors` are the
        user's masks, every object's — its seed reference first, then its prompts. Asked of the first engine
        of `for_objects`. An engine may learn from them; the default does nothing."""

    def prepare(self, seed: View, targets: Sequence[View]) -> None:  # noqa: B027 (optional hook)
        """Announce the next target frames of a job whose seed frame is `seed`, in the order `segment` will
        see them, so that an engine can do their per-frame work in one batch. The default does nothing."""

    def replay(self, seed: View, target: View, state: FrameState | None) -> None:  # noqa: B027 (optional)
        """Take back the `state` a journaled prediction of `target` carried (walk order, in place of
        `segment`) in a job whose seed frame is `seed`. The default carries nothing."""

    @abstractmethod
    def segment(self, target: View, refs: Sequence[Reference]) -> Prediction:
        """Predict the object in `target` from `refs` (at least one; the seed reference is always given)."""

    def segment_many(self, requests: Sequence[tuple[View, Sequence[Reference]]]) -> list[Prediction]:
        """`segment` for targets none of which is a reference of another (an engine may batch them);
        predictions in request order. The default segments them one by one."""
        return [self.segment(target, refs) for target, refs in requests]

    def segment_objects(
        self,
        engines: Sequence[Engine],
        requests: Sequence[Sequence[tuple[View, Sequence[Reference]]]],
    ) -> list[list[Prediction]]:
        """One round for every object of a job: `requests[o]` for `engines[o]` (from `for_objects`, this
        engine first), the same targets in the same order for each; per object the predictions in request
        order. An engine may do the objects together; the default asks each object's engine alone."""
        return [engine.segment_many(reqs) for engine, reqs in zip(engines, requests, strict=True)]
