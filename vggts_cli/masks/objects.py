"""The objects of a job: their ids and names, and one object per pixel.

A job tracks one or more objects at once. Objects never overlap in any output: where masks disagree, a
pixel goes to the most confident object of that frame (the higher presence score; on a tie, the object
listed first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrackedObject:
    """One object of a job: `id` as written in masks.json and label maps (1..65535), and a `name`."""

    id: int
    name: str

    def called(self, name: str) -> bool:
        """Whether the user's `name` (as in --redact-objects) means this object: its name or its id."""
        return name in (self.name, str(self.id))


ONE_OBJECT = (TrackedObject(1, "object"),)  # a job given one binary mask, where no name was given


def exclusive(masks: np.ndarray, scores: Sequence[float]) -> np.ndarray:
    """(O, H, W) bool masks -> the same with each pixel kept by at most one object: the one with the
    highest score among those claiming it (ties: the lower index)."""
    if len(masks) < 2:
        return masks
    order = sorted(range(len(masks)), key=lambda o: (-scores[o], o))
    owner = np.zeros(masks.shape[1:], dtype=np.uint16)
    for o in reversed(order):  # the most confident object writes last
        owner[masks[o]] = o + 1
    return owner[None] == np.arange(1, len(masks) + 1, dtype=np.uint16)[:, None, None]


def label_map(masks: np.ndarray, objects: Sequence[TrackedObject]) -> np.ndarray:
    """(O, H, W) bool non-overlapping masks -> (H, W) label map holding each object's id (0: background):
    uint8 where every id fits, else uint16."""
    dtype = np.uint8 if max(o.id for o in objects) <= 255 else np.uint16
    labels = np.zeros(masks.shape[1:], dtype=dtype)
    for mask, obj in zip(masks, objects, strict=True):
        labels[mask] = obj.id
    return labels


def union(masks: np.ndarray) -> np.ndarray:
    """(O, H, W) bool -> (H, W) bool: every object's pixels."""
    return masks.any(axis=0)
