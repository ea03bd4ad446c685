"""Score an Ego-Exo4D correspondence prediction file against the processed ground truth, as the official
evaluator does (EGO4D/ego-exo4d-relation, correspondence/evaluation), in both directions.

Ground truth (`process_annotations.py`): `{"annotations": {take: {"masks": {obj: {cam: {frame: RLE}}},
"annotated_frames": {obj: {cam: [int]}}, "subsample_idx": [...]}}}`. Ego cameras have `aria` in their name.
Predictions: `{"ego-exo" | "exo-ego": {"version", "challenge", "results": {take: {"masks": {obj:
{"{src}_{dst}": {frame: {"pred_mask": RLE, "confidence": float}}}}, "subsample_idx": [...]}}}}`.

For each object and ego/exo camera pair, the query frames are the source camera's ground-truth frames; one
is scored when the target camera annotated it, and the object is visible there when the target has a mask.
Where the official code asserts, this module raises a one-line VggtsError naming what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vggts_cli.errors import VggtsError
from vggts_cli.eval.metrics import ScoreSheet, iou, to_eval_size
from vggts_cli.masks import rle

DIRECTIONS = ("ego-exo", "exo-ego")


def load_json(path: Path, what: str) -> dict:
    """The JSON object in `path`; `what` names the file's role in the error of a missing or broken file."""
    path = Path(path)
    if not path.is_file():
        raise VggtsError(f"{path}: no such file ({what})")
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VggtsError(f"{path}: not valid JSON ({what}): {err}") from None
    if not isinstance(data, dict):
        raise VggtsError(f"{path}: expected a JSON object at the top level ({what})")
    return data


def is_ego(camera: str) -> bool:
    """Aria glasses are the ego cameras (`aria01_214-1`); the rest (`cam01`, `gp02`) are exo."""
    return "aria" in camera


def pair_key(src: str, dst: str) -> str:
    """The prediction file's key of a query camera and a target camera."""
    return f"{src}_{dst}"


@dataclass(frozen=True)
class Query:
    """One query frame of one object: find it in `dst` at `frame` from its ground truth in `src`."""

    direction: str
    take: str
    obj: str
    src: str
    dst: str
    frame: str  # the ground truth's key: the frame index as a string
    scored: bool  # the target camera annotated this frame


class GroundTruth:
    """The processed ground-truth file, with the structure checks the evaluator relies on."""

    def __init__(self, data: dict, where: str):
        self.where = where
        annotations = data.get("annotations")
        if not isinstance(annotations, dict):
            raise VggtsError(f"{where}: no 'annotations' object: not a processed Ego-Exo4D ground-truth file")
        self.takes: dict[str, dict] = annotations
        for take_id, take in annotations.items():
            for key in ("masks", "annotated_frames"):
                if not isinstance(take, dict) or not isinstance(take.get(key), dict):
                    raise VggtsError(f"{where}: take {take_id}: no '{key}' object")

    @classmethod
    def load(cls, path: Path) -> GroundTruth:
        return cls(load_json(path, "ground truth"), str(path))

    def cameras(self, take_id: str, obj: str) -> tuple[str | None, list[str]]:
        """(ego camera or None, exo cameras) that hold masks of `obj`."""
        cams = list(self.takes[take_id]["masks"][obj])
        egos = [c for c in cams if is_ego(c)]
        if len(egos) > 1:
            raise VggtsError(f"{self.where}: take {take_id}: object {obj!r}: more than one ego camera {egos}")
        return (egos[0] if egos else None), [c for c in cams if not is_ego(c)]

    def pairs(self, take_id: str, obj: str, direction: str) -> list[tuple[str, str]]:
        """(source, target) camera pairs of `obj` in `direction`; none where it lacks an ego or exo view."""
        ego, exos = self.cameras(take_id, obj)
        if ego is None:
            return []
        return [(ego, exo) if direction == "ego-exo" else (exo, ego) for exo in exos]

    def masks(self, take_id: str, obj: str, cam: str) -> dict[str, dict]:
        """Frame key -> RLE of `obj` in `cam`."""
        return self.takes[take_id]["masks"][obj][cam]

    def annotated(self, take_id: str, obj: str, cam: str) -> set[int]:
        frames = self.takes[take_id]["annotated_frames"].get(obj, {}).get(cam)
        if not isinstance(frames, list):
            raise VggtsError(
                f"{self.where}: take {take_id}: object {obj!r}: no annotated_frames for camera {cam}"
            )
        return {int(f) for f in frames}

    def queries(self, take_id: str, direction: str) -> Iterator[Query]:
        """Every query frame of `take_id` in `direction`, in the order the evaluator visits them."""
        for obj in self.takes[take_id]["masks"]:
            for src, dst in self.pairs(take_id, obj, direction):
                annotated = self.annotated(take_id, obj, dst)
                for frame in self.masks(take_id, obj, src):
                    yield Query(direction, take_id, obj, src, dst, frame, int(frame) in annotated)

    def mask(self, take_id: str, obj: str, cam: str, frame: str) -> np.ndarray | None:
        """The (H, W) bool ground truth of `obj` in `cam` at `frame`, None where there is none."""
        encoded = self.masks(take_id, obj, cam).get(frame)
        if encoded is None:
            return None
        return decode_rle(
            encoded, f"{self.where}: take {take_id}: object {obj!r}: camera {cam}: frame {frame}"
        )

    def mask_size(self, take_id: str, cam: str) -> tuple[int, int] | None:
        """(H, W) of the ground-truth masks of `cam` in `take_id` (any object, any frame), if it has any."""
        for by_cam in self.takes[take_id]["masks"].values():
            for encoded in by_cam.get(cam, {}).values():
                if isinstance(encoded, dict) and len(encoded.get("size", ())) == 2:
                    return int(encoded["size"][0]), int(encoded["size"][1])
        return None


def decode_rle(encoded: Any, where: str) -> np.ndarray:
    """A COCO RLE `{"size": [H, W], "counts": str}` -> (H, W) bool; a broken one is a one-line error."""
    try:
        return rle.decode(encoded)
    except (TypeError, KeyError, ValueError, AttributeError, UnicodeEncodeError) as err:
        raise VggtsError(f"{where}: not a COCO RLE mask ({type(err).__name__}: {err})") from None


def check_predictions(gt: GroundTruth, preds: dict, direction: str, where: str) -> dict[str, dict]:
    """The `results` of `direction`, after the official evaluator's checks (every take, object, camera pair
    and query frame present, each with `pred_mask` and `confidence`)."""
    block = preds.get(direction)
    if not isinstance(block, dict) or not isinstance(block.get("results"), dict):
        raise VggtsError(f"{where}: {direction}: no 'results' object")
    results = block["results"]
    where = f"{where}: {direction}"
    _same_keys(gt.takes, results, "take", where)
    for take_id in gt.takes:
        take = results[take_id]
        for key in ("masks", "subsample_idx"):
            if not isinstance(take, dict) or key not in take:
                raise VggtsError(f"{where}: take {take_id}: no '{key}'")
        _same_keys(gt.takes[take_id]["masks"], take["masks"], "object", f"{where}: take {take_id}")
    for take_id in gt.takes:
        for q in gt.queries(take_id, direction):
            pair = results[take_id]["masks"][q.obj]
            at = f"{where}: take {take_id}: object {q.obj!r}"
            if not isinstance(pair, dict) or pair_key(q.src, q.dst) not in pair:
                raise VggtsError(f"{at}: camera pair {pair_key(q.src, q.dst)!r} missing")
            entry = pair[pair_key(q.src, q.dst)].get(q.frame)
            at = f"{at}: pair {pair_key(q.src, q.dst)!r}: frame {q.frame}"
            if not isinstance(entry, dict):
                raise VggtsError(f"{at}: missing")
            for key in ("pred_mask", "confidence"):
                if key not in entry:
                    raise VggtsError(f"{at}: no '{key}'")
            if not isinstance(entry["confidence"], int | float) or isinstance(entry["confidence"], bool):
                raise VggtsError(f"{at}: confidence {entry['confidence']!r} is not a number")
    return results


def _same_keys(expected: dict, found: Any, kind: str, where: str) -> None:
    """Every key of `expected` in `found`, and no other (the evaluator compares counts)."""
    if not isinstance(found, dict):
        raise VggtsError(f"{where}: expected an object of {kind}s")
    for key in expected:
        if key not in found:
            raise VggtsError(f"{where}: {kind} {key!r} missing")
    extra = [key for key in found if key not in expected]
    if extra:
        raise VggtsError(f"{where}: {kind} {extra[0]!r} is not in the ground truth")


def score_direction(
    gt: GroundTruth,
    results: dict[str, dict],
    direction: str,
    where: str,
    on_frame: Callable[[int], None] = lambda n: None,
) -> ScoreSheet:
    """Every scored query frame of `direction` on one sheet (micro average over takes, objects, pairs)."""
    sheet = ScoreSheet()
    for take_id in gt.takes:
        for q in gt.queries(take_id, direction):
            if not q.scored:
                continue
            on_frame(1)
            entry = results[take_id]["masks"][q.obj][pair_key(q.src, q.dst)][q.frame]
            target = gt.mask(take_id, q.obj, q.dst, q.frame)
            if target is None:
                sheet.add_absent(float(entry["confidence"]))
                continue
            pair = pair_key(q.src, q.dst)
            at = f"{where}: {direction}: take {take_id}: object {q.obj!r}: pair {pair!r}: frame {q.frame}"
            target = to_eval_size(target)
            pred = decode_rle(entry["pred_mask"], f"{at}: pred_mask")
            if pred.shape != target.shape:
                raise VggtsError(
                    f"{at}: pred_mask is {pred.shape[0]}x{pred.shape[1]}, the evaluator needs "
                    f"{target.shape[0]}x{target.shape[1]} (the ground truth's size, longest side 480)"
                )
            sheet.add_visible(target, pred, float(entry["confidence"]))
            source = gt.mask(take_id, q.obj, q.src, q.frame)
            if source is not None and source.any() and target.any():
                sheet.add_visible_pair(iou(target, pred))
    return sheet


def directions_in(preds: dict, where: str) -> list[str]:
    """The directions a prediction file holds."""
    directions = [d for d in DIRECTIONS if d in preds]
    if not directions:
        raise VggtsError(f"{where}: neither 'ego-exo' nor 'exo-ego' at the top level: not a prediction file")
    return directions


def scored_frames(gt: GroundTruth, directions: Iterable[str]) -> int:
    """How many query frames `score` scores in `directions` (for a progress bar)."""
    return sum(q.scored for d in directions for take_id in gt.takes for q in gt.queries(take_id, d))


def score(
    gt: GroundTruth, preds: dict, where: str, on_frame: Callable[[int], None] = lambda n: None
) -> dict[str, dict]:
    """Direction -> metrics (`ScoreSheet.summary`) for each direction the prediction file holds; the
    whole file is checked before any frame is scored. `on_frame` is called after each scored frame."""
    directions = directions_in(preds, where)
    results = {d: check_predictions(gt, preds, d, where) for d in directions}
    return {d: score_direction(gt, results[d], d, where, on_frame).summary() for d in directions}
