"""Make an Ego-Exo4D correspondence prediction file with any engine, from the takes' videos and the
processed ground truth (which supplies the query masks).

Videos are `{takes}/{take_name}/frame_aligned_videos/{camera}.mp4`, all cameras of a take frame-aligned, so
a ground-truth frame key is a frame index in every camera. For each scored query frame the engine gets the
target camera's frame and one "cross" reference (the source frame and its ground-truth mask); its mask is
stored at the evaluator's size and its presence score as the confidence. Query frames the evaluator does not
score (the target camera did not annotate them) get an empty mask with confidence 0, which the file format
requires and no metric reads.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from vggts_cli import __version__
from vggts_cli.engines.base import Engine, Reference, View
from vggts_cli.errors import VggtsError
from vggts_cli.eval.egoexo import GroundTruth, Query, load_json, pair_key
from vggts_cli.eval.metrics import eval_size, resize_mask
from vggts_cli.masks import rle
from vggts_cli.video.reader import VideoInfo, VideoReader, probe


def read_take_names(relations: Path) -> dict[str, str]:
    """take uid -> take name from a raw `relations_{split}.json` (`annotations[uid]["take_name"]`)."""
    annotations = load_json(relations, "Ego-Exo4D relations annotations").get("annotations")
    if not isinstance(annotations, dict):
        raise VggtsError(f"{relations}: no 'annotations' object: not an Ego-Exo4D relations file")
    return {uid: a["take_name"] for uid, a in annotations.items() if isinstance(a, dict) and "take_name" in a}


def video_path(takes: Path, take_name: str, camera: str) -> Path:
    return Path(takes) / take_name / "frame_aligned_videos" / f"{camera}.mp4"


class EgoExoPredictor:
    """Runs `engine` over every query of a ground-truth file and assembles the prediction file."""

    def __init__(
        self,
        gt: GroundTruth,
        takes: Path,
        engine: Engine,
        directions: Iterable[str],
        take_names: dict[str, str] | None = None,
    ):
        self.gt = gt
        self.takes = Path(takes)
        self.engine = engine
        self.directions = tuple(directions)
        self.take_names = take_names or {}
        self.queries = {
            take_id: [q for d in self.directions for q in gt.queries(take_id, d)] for take_id in gt.takes
        }

    def take_name(self, take_id: str) -> str:
        """The take's folder: from the relations file, else the ground truth's `take_name`, else the id."""
        return self.take_names.get(take_id) or self.gt.takes[take_id].get("take_name") or take_id

    def segment_calls(self) -> int:
        """How many times `run` asks the engine (scored queries), for a progress bar."""
        return sum(q.scored for queries in self.queries.values() for q in queries)

    def check_videos(self) -> None:
        """Fail before any work when a camera's video is missing."""
        for take_id, queries in self.queries.items():
            for cam in sorted({c for q in queries if q.scored for c in (q.src, q.dst)}):
                path = video_path(self.takes, self.take_name(take_id), cam)
                if not path.is_file():
                    hint = "" if self.take_names else " (takes named by take_name? pass the relations file)"
                    raise VggtsError(f"{path}: no such file, needed for take {take_id}{hint}")

    def run(self, on_segment: Callable[[int], None] = lambda n: None) -> dict:
        """The prediction file (both keys of an EvalAI submission, or the one direction asked for)."""
        self.check_videos()
        results: dict[str, dict] = {d: {} for d in self.directions}
        for take_id, take in self.gt.takes.items():
            entries = self._predict_take(take_id, on_segment)
            for direction in self.directions:
                masks: dict[str, dict] = {obj: {} for obj in take["masks"]}
                for q in self.queries[take_id]:
                    if q.direction == direction:
                        masks[q.obj].setdefault(pair_key(q.src, q.dst), {})[q.frame] = entries[q]
                subsample = take.get("subsample_idx", [])
                results[direction][take_id] = {"masks": masks, "subsample_idx": subsample}
        version = f"vggts {__version__} ({self.engine.name})"
        return {
            d: {"version": version, "challenge": "correspondence", "results": results[d]} for d in results
        }

    def _predict_take(self, take_id: str, on_segment: Callable[[int], None]) -> dict[Query, dict]:
        """Entry (`pred_mask`, `confidence`) of every query of one take, decoding each frame once."""
        by_frame: dict[int, list[Query]] = defaultdict(list)
        entries: dict[Query, dict] = {}
        infos: dict[str, VideoInfo] = {}
        for q in self.queries[take_id]:
            if q.scored:
                by_frame[int(q.frame)].append(q)
                for cam in (q.src, q.dst):
                    if cam not in infos:
                        infos[cam] = probe(video_path(self.takes, self.take_name(take_id), cam))
            else:
                entries[q] = self._entry(np.zeros(self._target_size(q, None), bool), 0.0)
        with contextlib.ExitStack() as stack:
            readers = {cam: stack.enter_context(VideoReader(info)) for cam, info in infos.items()}
            for index in sorted(by_frame):
                queries = by_frame[index]
                frames = {
                    cam: self._frame(readers[cam], take_id, cam, index)
                    for cam in sorted({c for q in queries for c in (q.src, q.dst)})
                }
                for q in queries:
                    entries[q] = self._predict(q, frames)
                    on_segment(1)
        return entries

    def _frame(self, reader: VideoReader, take_id: str, cam: str, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame `index` of `cam`."""
        if index >= reader.info.num_frames:
            raise VggtsError(
                f"{reader.info.path}: take {take_id}: ground-truth frame {index} is past the video's end "
                f"({reader.info.num_frames} frames)"
            )
        return next(iter(reader.frames(index, index + 1))).image

    def _predict(self, q: Query, frames: dict[str, np.ndarray]) -> dict:
        """One engine call: the target frame from the source frame and its ground-truth mask."""
        source, target = frames[q.src], frames[q.dst]
        mask = self.gt.mask(q.take, q.obj, q.src, q.frame)
        size = self._target_size(q, target.shape[:2])
        if mask is None or not mask.any():  # nothing to look for: say "absent" without asking the engine
            return self._entry(np.zeros(size, bool), 0.0)
        ref = Reference(View(q.src, int(q.frame), source), resize_mask(mask, source.shape[:2]), "cross")
        self.engine.start([Reference(ref.view, ref.mask, "seed")])  # each query is a job of its own
        prediction = self.engine.segment(View(q.dst, int(q.frame), target), [ref])
        return self._entry(resize_mask(prediction.mask, size), prediction.score)

    def _target_size(self, q: Query, frame_size: tuple[int, int] | None) -> tuple[int, int]:
        """(h, w) the evaluator expects: the target's ground-truth size at this frame (or at any frame of that
        camera, or the video frame's), resized to longest side 480."""
        target = self.gt.masks(q.take, q.obj, q.dst).get(q.frame)
        if isinstance(target, dict) and len(target.get("size", ())) == 2:
            height, width = target["size"]
        else:
            height, width = self.gt.mask_size(q.take, q.dst) or frame_size or (480, 480)
        return eval_size(int(height), int(width))

    @staticmethod
    def _entry(mask: np.ndarray, confidence: float) -> dict:
        return {"pred_mask": rle.encode(mask), "confidence": float(confidence)}
