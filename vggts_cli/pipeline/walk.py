"""The segmentation walk of one job: every frame of every camera, in schedule order, through the engine.

The walk has legs (forward from the seed frame, then backward from it; so from each prompt on the seed
camera too: pipeline/schedule.py). Each leg reads its frames `engine.window` seed-camera steps at a time
and announces them to the engine (`Engine.prepare`), which may batch their per-frame work. Frames are
then segmented in rounds: the seed camera's next frame together with the other cameras' frames of the step
before, whose cross reference (the seed camera's frame of their step) is known by then. At most one frame
of a camera goes into a round, so a frame's temporal reference is its camera's frame of the round before.

Every object of the job goes through the same walk: each frame is read and announced once, and each object
asks its own engine (`Engine.for_objects`: own carried state, shared per-frame work) with its own
references. The masks of a frame are then made exclusive (one object per pixel) before they are recorded
and become references.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass

import numpy as np

from vggts_cli.engines.base import Engine, Prediction, Reference, ReferenceKind, View
from vggts_cli.jobs import PreparedJob
from vggts_cli.masks import rle
from vggts_cli.masks.objects import exclusive
from vggts_cli.pipeline.journal import Entry, Journal
from vggts_cli.pipeline.schedule import Step, plan_legs
from vggts_cli.video.inputs import CameraReader, open_camera
from vggts_cli.video.prefetch import prefetch
from vggts_cli.video.reader import Frame

# progress(stage, frames_done_increment): the CLI draws it; the library stays silent.
ProgressFn = Callable[[str, int], None]
PREFETCH = 8  # frames decoded ahead per camera, on a background thread


Refs = list[Reference]  # one reference per object, in the job's object order


@dataclass(frozen=True)
class Task:
    """One frame to segment in a round: its camera's index, the decoded frame, and per object its
    references (`refs[o]`)."""

    camera: int
    frame: Frame
    refs: list[list[Reference]]


class Walk:
    """Segments every frame of a prepared job into its journal; `seconds` is engine time per camera.

    State, per camera c (each a reference per object): `temporal[c]`, c's latest frame on the current leg;
    `leg_start[c]`, c's first frame on the current forward leg, where c's backward leg starts from;
    `ready[c]`, frames of c read and waiting for the round after their cross references' (with those
    references).
    """

    def __init__(self, prepared: PreparedJob, engine: Engine, journal: Journal, tick: ProgressFn) -> None:
        self.cameras = prepared.cameras
        self.seed_masks = prepared.seed_masks
        self.seed_index = prepared.job.mask_frame
        self.engines = engine.for_objects(len(prepared.objects))
        self.journal = journal
        self.tick = tick
        self.seconds = [0.0] * len(self.cameras)
        self.temporal: list[Refs | None] = [None] * len(self.cameras)
        self.leg_start: list[Refs | None] = [None] * len(self.cameras)
        self.ready: list[deque[tuple[Frame, Refs]]] = [deque() for _ in self.cameras]
        self.seed_refs: Refs = []
        self.seed_view: View | None = None
        # The user's masks by (camera, frame): (masks (O, H, W), which objects they give (O,)), the seed's
        # and the prompts'; and per object its prompts as references, with their world times.
        full = np.ones(len(prepared.objects), dtype=bool)
        self.given = {(0, self.seed_index): (self.seed_masks, full)}
        self.given.update({(p.camera, p.frame): (p.masks, p.given) for p in prepared.prompts})
        self.prompts = prepared.prompts
        self.prompt_refs: list[list[tuple[float, Reference]]] = [[] for _ in prepared.objects]

    def run(self) -> None:
        """Every leg (pipeline/schedule.py): per anchor (the seed frame, the seed camera's prompts) forward
        from it, then backward from the frame before it."""
        cams, s = self.cameras, self.seed_index
        anchors = [s, *(p.frame for p in self.prompts if p.camera == 0)]
        legs = plan_legs(cams[0].world_times, [c.world_times for c in cams[1:]], anchors)
        with ExitStack() as stack:
            readers = [stack.enter_context(open_camera(c.info)) for c in cams]
            seed_frame = next(readers[0].frames(s, s + 1))
            self.seed_view = View(cams[0].name, s, seed_frame.image)
            self.seed_refs = [Reference(self.seed_view, m, "seed") for m in self.seed_masks]
            self._read_prompts(readers)
            self.engines[0].start([*self.seed_refs, *(ref for refs in self.prompt_refs for _, ref in refs)])
            others = range(1, len(cams))
            for steps in legs:
                first = steps[0].seed_index
                if steps[0].direction > 0:  # a fresh leg: no camera has a previous frame on it yet
                    self.temporal = [None] * len(cams)
                    self.leg_start = [None] * len(cams)
                    sources = [readers[0].frames(first)] + [
                        readers[k].frames(_first(steps, k)) for k in others
                    ]
                else:  # back from the anchor: each camera goes on from its first frame of the forward leg
                    self.temporal = list(self.leg_start)
                    stops = [_backward_stop(steps, k) for k in others]
                    sources = [readers[0].frames_reversed(steps[-1].seed_index, first + 1)] + [
                        readers[k].frames_reversed(0, stop) for k, stop in zip(others, stops, strict=True)
                    ]
                self._leg(steps, sources)

    def _read_prompts(self, readers: Sequence[CameraReader]) -> None:
        """Each prompt's frame, as a reference of every object it shows."""
        for prompt in self.prompts:
            camera = self.cameras[prompt.camera]
            frame = next(readers[prompt.camera].frames(prompt.frame, prompt.frame + 1))
            view = View(camera.name, prompt.frame, frame.image)
            when = float(camera.world_times[prompt.frame])
            for o, (mask, given) in enumerate(zip(prompt.masks, prompt.given, strict=True)):
                if given and mask.any():  # an object marked absent shows nothing to look for
                    self.prompt_refs[o].append((when, Reference(view, mask, "prompt")))

    def _leg(self, steps: Sequence[Step], sources: list[Iterator[Frame]]) -> None:
        """One leg: decoding runs in background threads (PyAV releases the GIL), a few frames ahead of the
        engine; each leg's threads end before the next leg reads the same files."""
        with ExitStack() as threads:
            frames = [threads.enter_context(closing(prefetch(src, depth=PREFETCH))) for src in sources]
            window = max(1, self.engines[0].window)
            for start in range(0, len(steps), window):
                batch = self._read(steps[start : start + window], frames[0], frames[1:])
                self._announce(batch)
                for lead, others in batch:
                    self._round(lead)
                    latest = self.temporal[0]
                    assert latest is not None
                    cross = _as(latest, "cross")
                    for k, frame in others:
                        self.ready[k].append((frame, cross))
                    while any(len(queue) > 1 for queue in self.ready):  # a camera faster than the seed's
                        self._round(None)
                self.journal.flush()
            while any(self.ready):
                self._round(None)
            self.journal.flush()

    def _read(
        self, steps: Sequence[Step], seed_frames: Iterator[Frame], other_frames: list[Iterator[Frame]]
    ) -> list[tuple[Frame, list[tuple[int, Frame]]]]:
        """The frames of `steps`: per step, the seed camera's frame and the (camera, frame) attached to it."""
        batch = []
        for step in steps:
            lead = next(seed_frames)
            assert lead.index == step.seed_index
            others = []
            for k, indices in enumerate(step.others, start=1):
                for index in indices:
                    others.append((k, next(other_frames[k - 1])))
                    assert others[-1][1].index == index
            batch.append((lead, others))
        return batch

    def _announce(self, batch: list[tuple[Frame, list[tuple[int, Frame]]]]) -> None:
        """Tell the engines which frames they will be asked for (those the journal does not hold yet)."""
        assert self.seed_view is not None
        pending = [
            View(self.cameras[c].name, f.index, f.image)
            for lead, others in batch
            for c, f in [(0, lead), *others]
            if self.journal.get(c, f.index) is None and not self._all_given(c, f.index)
        ]
        if pending:
            for engine in _distinct(self.engines):
                engine.prepare(self.seed_view, pending)

    def _all_given(self, camera: int, index: int) -> bool:
        """The user gave this frame's every object (the seed frame, or a prompt of all objects)."""
        given = self.given.get((camera, index))
        return given is not None and bool(given[1].all())

    def _round(self, lead: Frame | None) -> None:
        """Segment the seed camera's `lead` (if any) and the next ready frame of every other camera."""
        tasks = []
        if lead is not None:
            tasks.append(Task(0, lead, self._refs(0, lead.index)))
        for k in range(1, len(self.cameras)):
            if self.ready[k]:
                frame, cross = self.ready[k].popleft()
                tasks.append(Task(k, frame, self._refs(k, frame.index, cross)))
        for task, result in zip(tasks, self._segment(tasks), strict=True):
            self.temporal[task.camera] = result
            if self.leg_start[task.camera] is None:
                self.leg_start[task.camera] = result

    def _refs(self, camera: int, index: int, cross: Refs | None = None) -> list[list[Reference]]:
        """Per object: the cross reference (other cameras), the seed, the object's prompt nearest in time,
        the camera's previous frame."""
        previous = self.temporal[camera]
        when = float(self.cameras[camera].world_times[index])
        refs = []
        for o, seed in enumerate(self.seed_refs):
            here = (self.cameras[camera].name, index)
            prompts = [
                (abs(t - when), r) for t, r in self.prompt_refs[o] if (r.view.camera, r.view.index) != here
            ]
            nearest = [min(prompts, key=lambda p: p[0])[1]] if prompts else []
            refs.append(
                [*([cross[o]] if cross else []), seed, *nearest, *([previous[o]] if previous else [])]
            )
        return refs

    def _segment(self, tasks: list[Task]) -> list[Refs]:
        """Masks of independent frames: from the journal (the engines replay their state), the seed's own,
        or the engines, each of which gets all the others in one call; the round is journaled as one
        record, and each frame's masks come back as temporal references."""
        assert self.seed_view is not None
        views = [View(self.cameras[t.camera].name, t.frame.index, t.frame.image) for t in tasks]
        masks: list[np.ndarray | None] = [None] * len(tasks)
        fresh: dict[tuple[int, int], tuple[Entry, ...]] = {}
        asked = []
        for n, task in enumerate(tasks):
            cached = self.journal.get(task.camera, task.frame.index)
            if cached is not None:
                size = list(task.frame.image.shape[:2])
                masks[n] = np.stack([rle.decode({"size": size, "counts": e.counts}) for e in cached])
                for engine, entry in zip(self.engines, cached, strict=True):
                    engine.replay(self.seed_view, views[n], entry.state)
            elif self._all_given(task.camera, task.frame.index):
                masks[n] = self.given[(task.camera, task.frame.index)][0]
                fresh[(task.camera, task.frame.index)] = tuple(
                    Entry(rle.encode(m)["counts"], 1.0) for m in masks[n]
                )
            else:
                asked.append(n)
        if asked:
            start = time.perf_counter()
            requests = [[(views[n], tasks[n].refs[o]) for n in asked] for o in range(len(self.engines))]
            per_object = self.engines[0].segment_objects(self.engines, requests)
            share = (time.perf_counter() - start) / len(asked)
            for n, predictions in zip(asked, zip(*per_object, strict=True), strict=True):
                task = tasks[n]
                predicted, scores = self._with_prompt(task, predictions)
                masks[n] = predicted
                self.seconds[task.camera] += share
                fresh[(task.camera, task.frame.index)] = tuple(
                    Entry(rle.encode(m)["counts"], score, p.state)
                    for m, score, p in zip(masks[n], scores, predictions, strict=True)
                )
        if fresh:
            self.journal.append_round(fresh)
        self.tick("segment", len(tasks))
        return [
            [Reference(view, mask, "temporal") for mask in frame_masks]
            for view, frame_masks in zip(views, masks, strict=True)
        ]

    def _with_prompt(self, task: Task, predictions: Sequence[Prediction]) -> tuple[np.ndarray, list[float]]:
        """A frame's predicted masks, where a prompt gives some objects theirs, and the objects' scores
        (given: 1); exclusive, the given objects first."""
        masks = np.stack([p.mask for p in predictions])
        scores = [float(p.score) for p in predictions]
        prompt = self.given.get((task.camera, task.frame.index))
        if prompt is None:
            return exclusive(masks, scores), scores
        given = prompt[1]
        masks[given] = prompt[0][given]
        scores = [1.0 if g else s for g, s in zip(given, scores, strict=True)]
        return exclusive(masks, [2.0 if g else s for g, s in zip(given, scores, strict=True)]), scores


def _as(refs: Refs, kind: ReferenceKind) -> Refs:
    """The same frames and masks as references of another kind."""
    return [Reference(r.view, r.mask, kind) for r in refs]


def _distinct(engines: Sequence[Engine]) -> list[Engine]:
    """Each engine once (objects of an engine that carries nothing per object share it)."""
    return list({id(e): e for e in engines}.values())


def _first(steps: Sequence[Step], k: int) -> int:
    """Camera k's first frame on a leg (0 when it has none)."""
    return next((step.others[k - 1][0] for step in steps if step.others[k - 1]), None) or 0


def _backward_stop(backward: Sequence[Step], k: int) -> int:
    """One past the highest frame of camera k on the backward leg (0 when it has none)."""
    indices = [i for step in backward for i in step.others[k - 1]]
    return max(indices) + 1 if indices else 0
