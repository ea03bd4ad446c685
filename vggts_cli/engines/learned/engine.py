"""The learned engine: VGGT-Segmentor on [reference, target] pairs.

Per target frame, every reference with a non-empty mask makes one pair: K-Means points of the reference
mask are tracked into the target and, with the reference mask, prompt the Union Segmentation Head. The
references' logits are fused by a weighted mean and mapped back to the target frame.

Small objects are looked at through a focus crop (engines/learned/focus.py): the crop the camera's
previous mask calls for, kept while the object stays well inside it; without a previous mask (the first
frame of a camera, a lost track, a single pair) a first look at the whole frame says where to focus.

Two schedules for the backbone (the expensive, mask-free part):
- "windowed" (default): each frame goes through the backbone once, as the pair [seed frame, framed frame],
  and announced frames (`prepare`, framed by their camera's current crop) go in batches of `window`
  pairs. A target's pairs then reuse cached features: its seed pair is exactly the pair the backbone saw; a
  temporal or cross reference brings the features of its own [seed, reference] pass, framed as it was
  when it was segmented. A target whose crop changed since it was announced is framed anew together with
  its camera's next announced frames (the new crop is kept while the object stays inside it), one window
  for all the targets of a round that missed.
- "pair" (the official pipeline's way): every [reference, target] pair through the whole model on its own.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from vggts_cli.cache import LruCache
from vggts_cli.device import resolve_device
from vggts_cli.engines.base import Engine, FrameState, Prediction, Reference, ReferenceKind, View
from vggts_cli.engines.learned.adapt import AdaptConfig, adapt, tuned_parameters
from vggts_cli.engines.learned.backoff import WindowBackoff, free_cuda_memory, window_from_memory
from vggts_cli.engines.learned.focus import (
    FOCUS_MAX,
    KEEP_MAX,
    focus_crop,
    search_box,
    still_fits,
    within,
)
from vggts_cli.errors import UsageError
from vggts_cli.geometry import Box, Framing, SquareCrop, bbox
from vggts_cli.model.io import DEFAULT_MODEL, load_model
from vggts_cli.model.union_head import presence_score
from vggts_cli.model.vggts import VGGTS

# Weights of the fused logits. The seed is the user's own mask and never drifts; a cross reference is
# another camera at the same instant, so the object is in the same pose (the ego↔exo setting VGGT-S is
# trained for). A temporal reference looks most like the target but carries our own earlier prediction,
# errors included, so it counts half: two anchors outvote a drifting track where they disagree.
KIND_WEIGHTS: dict[ReferenceKind, float] = {"seed": 1.0, "prompt": 1.0, "cross": 1.0, "temporal": 0.5}


def fuse_logits(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean of per-reference logits (R, H, W) with weights (R,) > 0 -> (H, W)."""
    weights = weights.to(logits)
    return torch.einsum("rhw,r->hw", logits, weights / weights.sum())


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(images).movedim(-1, -3).float() / 255


Schedule = Literal["windowed", "pair"]
SCHEDULES: tuple[Schedule, ...] = ("windowed", "pair")
CPU_WINDOW = 8  # pairs per backbone batch on the CPU: larger ones gain little there
MAX_GPU_WINDOW = 32


@dataclass
class _Task:
    """One target of one object: the engine following that object (`owner`), its usable references, its
    job's seed View, the target camera's previous frame among them, its focus crop (None: whole), whether
    that crop is still to be found by a first look at the whole frame (`search`) and that look's result,
    and once predicted, (frame logits (H, W), presence score)."""

    owner: LearnedEngine
    target: View
    usable: list[Reference]
    seed: View | None
    previous: Reference | None
    crop: SquareCrop | None
    search: bool
    look: tuple[torch.Tensor, float] | None = None
    result: tuple[torch.Tensor, float] | None = None


FEATURE_CACHE = 64  # framed frames whose features are kept, at least (announced targets + recent references)
FRAMINGS_KEPT = 16  # segmented frames whose crop is remembered (references are recent frames)
Key = tuple[str, int, SquareCrop | None]  # (camera, frame index, focus crop) of a cached pass


@dataclass
class _JobFeatures:
    """What every object of one job shares: the seed View it started with; (camera, index, crop) ->
    (seed features, frame features), each (C, h, w), from the frame's [seed, framed frame] backbone pass;
    the seed's model input (1, 3, S, S) and per-image tokens (1, P, C); how many objects share it; while the
    model is tuned to the job's masks (`Engine.start`), its tuned parameters as loaded; per camera, the
    frames announced to `prepare` and not segmented yet, in the order they come."""

    seed: View | None = None
    features: LruCache[Key, tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=lambda: LruCache(FEATURE_CACHE)
    )
    seed_input: torch.Tensor | None = None
    seed_patches: torch.Tensor | None = None
    objects: int = 1
    loaded: dict[str, torch.Tensor] | None = None
    announced: dict[str, list[View]] = field(default_factory=dict)

    def start(self, seed: View | None) -> None:
        self.seed = seed
        self.features.clear()
        self.seed_input = self.seed_patches = None
        self.announced.clear()

    def announce(self, views: Sequence[View]) -> None:
        """Frames the walk will ask for, each camera's in the order it will."""
        for view in views:
            queue = self.announced.setdefault(view.camera, [])
            if all(v.index != view.index for v in queue):
                queue.append(view)

    def segmented(self, view: View) -> None:
        """An announced frame is done: no later window needs it."""
        queue = self.announced.get(view.camera, [])
        queue[:] = [v for v in queue if v.index != view.index]

    def following(self, view: View, count: int) -> list[View]:
        """Up to `count` announced frames of `view`'s camera that come after it."""
        queue = self.announced.get(view.camera, [])
        at = next((n for n, v in enumerate(queue) if v.index == view.index), None)
        return [] if at is None else queue[at + 1 : at + 1 + count]

    def untune(self, model: VGGTS) -> None:
        """Put back the parameters a job's tuning changed."""
        if self.loaded is not None:
            with torch.no_grad():
                for name, p in tuned_parameters(model).items():
                    p.copy_(self.loaded[name])
            self.loaded = None


class LearnedEngine(Engine):
    """VGGT-Segmentor: bf16 autocast on CUDA, fp32 on the CPU; deterministic on the CPU.

    focus: look at small objects through a focus crop (engines/learned/focus.py); False: whole frames.
    adapt: how the model is tuned to each job's masks before it propagates (engines/learned/adapt.py).
    """

    name = "vggts"

    def __init__(
        self,
        model: VGGTS,
        device: str | torch.device = "cpu",
        schedule: Schedule = "windowed",
        window: int | None = None,
        focus: bool = True,
        adapt: AdaptConfig | None = None,
    ) -> None:
        model.check_segmentable()
        if schedule not in SCHEDULES:
            raise UsageError(f"schedule {schedule!r} is not one of {', '.join(SCHEDULES)}")
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.size = model.cfg.img_size
        self.schedule = schedule
        self.focus = focus
        self.adapt = adapt or AdaptConfig()
        # Pairs per backbone batch: given, else as many as free GPU memory holds (CPU: a few); an
        # out-of-memory halves it for the rest of the engine's life and retries the same frames.
        self._backoff = WindowBackoff(window or self._window_for_device())
        # Per job, shared by the engines of all its objects (for_objects): the backbone features.
        self._job = _JobFeatures()
        # Per job and object (keyed by the seed View object): K-Means points of reference masks; the crop
        # each segmented View was seen through (the View kept to recognise it when it comes back as a
        # reference); each camera's latest crop, which frames announced to `prepare` are framed by.
        self._seed: View | None = None
        self._points: LruCache[Key, torch.Tensor] = LruCache(FEATURE_CACHE)
        self._framed: LruCache[tuple[str, int], tuple[View, SquareCrop | None]] = LruCache(FRAMINGS_KEPT)
        self._camera_crop: dict[str, SquareCrop | None] = {}

    def for_objects(self, count: int) -> list[LearnedEngine]:
        """This engine and count - 1 twins: each follows its own object (own points, crops), all share the
        model and the backbone features of frames seen through the same crop."""
        twins = [self]
        for _ in range(count - 1):
            twin = copy.copy(self)  # model, backoff and the job's features shared
            twin._seed = None
            twin._points = LruCache(FEATURE_CACHE)
            twin._framed = LruCache(FRAMINGS_KEPT)
            twin._camera_crop = {}
            twins.append(twin)
        self._job.objects = count
        return twins

    @classmethod
    def load(
        cls,
        model: str | None,
        device: str,
        schedule: Schedule = "windowed",
        window: int | None = None,
        adapt: AdaptConfig | None = None,
    ) -> LearnedEngine:
        """The engine for `--model` (a vggts model file or name; None = the shipped default) on `--device`."""
        target = resolve_device(device)
        return cls(load_model(model or DEFAULT_MODEL, target), target, schedule, window, adapt=adapt)

    @property
    def window(self) -> int:  # type: ignore[override]
        return self._backoff.window

    def _window_for_device(self) -> int:
        free = free_cuda_memory(self.device)
        if free is None:
            return CPU_WINDOW
        return window_from_memory(free, self._bytes_per_pair(), reserve=2 * 2**30, lo=1, hi=MAX_GPU_WINDOW)

    def _bytes_per_pair(self) -> int:
        """A generous estimate of the backbone's working memory for one [seed, frame] pair: the
        aggregator's tokens of the kept layers and the DPT's largest maps, in bf16, with slack."""
        cfg = self.model.cfg
        tokens = 2 * (cfg.img_size // cfg.aggregator.dino.patch_size) ** 2
        aggregator = tokens * 2 * cfg.aggregator.embed_dim * (len(cfg.dpt.layer_idx) + 4) * 2
        dpt = 2 * max(cfg.dpt.out_channels) * (cfg.img_size // 2) ** 2 * 4 * 2
        return 4 * (aggregator + dpt)

    # -- per-job state: the windowed schedule's feature cache and the focus crops ---------------------

    def start(self, anchors: Sequence[Reference]) -> None:
        """Tune the model to the job's masks (`self.adapt`; the same weights on `--resume`), starting from
        the model as loaded: the backbone features every object shares are the tuned model's. The tuning
        holds until the next `start`."""
        seed = next((ref.view for ref in anchors if ref.kind == "seed"), None)
        self._start_job(seed, new=True)
        self._job.untune(self.model)
        usable = [ref for ref in anchors if ref.mask.any()]
        if self.adapt.steps > 0 and usable:
            self._job.loaded = {k: p.detach().clone() for k, p in tuned_parameters(self.model).items()}
            adapt(self.model, usable, self.adapt)

    def _start_job(self, seed: View | None, new: bool = False) -> None:
        """Per-object state for the job of `seed` (kept while it is the same); the job's shared state too
        when this object is the first to start it, or `new`: a job starting afresh."""
        if new or seed is None or self._seed is not seed:
            self._seed = seed
            self._points.clear()
            self._framed.clear()
            self._camera_crop.clear()
            if new or seed is None or self._job.seed is not seed:
                self._job.start(seed)

    def _framing(self, view: View, crop: SquareCrop | None) -> Framing:
        return Framing(view.image.shape[:2], crop, self.size)

    def _upload(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [0, 1] on the device; to a GPU as uint8 from
        pinned memory (a quarter of the bytes, an asynchronous copy), converted there."""
        if self.device.type != "cuda":
            return to_tensor(images)
        pinned = torch.from_numpy(images).pin_memory()
        return pinned.to(self.device, non_blocking=True).movedim(-1, -3).float() / 255

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    def _compute_features(self, seed: View, framed: Sequence[tuple[View, SquareCrop | None]]) -> None:
        """Backbone features of [seed, framed view] pairs, `window` pairs per batch, into the cache. The
        seed's per-image tokens are computed once per job and shared by every pair."""

        def window_features(chunk: Sequence[tuple[View, SquareCrop | None]]) -> list[torch.Tensor]:
            # Always a full window (the last pair repeated): a pair's features then do not depend on which
            # pairs it was batched with (kernels pick their blocking by batch size), so a resumed job that
            # batches other frames together gets the same bits.
            padded = [*chunk, *[chunk[-1]] * (self.window - len(chunk))]
            frames = self._upload(np.stack([self._framing(v, c).image(v.image) for v, c in padded]))
            with torch.inference_mode(), self._autocast():
                job = self._job
                if job.seed_input is None:
                    job.seed_input = self._upload(self._framing(seed, None).image(seed.image)[None])
                    job.seed_patches = self.model.embed(job.seed_input)
                n = len(padded)
                images = torch.stack([job.seed_input.expand(n, -1, -1, -1), frames], dim=1)
                patches = torch.stack([job.seed_patches.expand(n, -1, -1), self.model.embed(frames)], dim=1)
                return list(self.model.features(images, patches).float())[: len(chunk)]

        for (view, crop), fmap in zip(framed, self._backoff.run(window_features, framed), strict=True):
            self._job.features.put((view.camera, view.index, crop), (fmap[0], fmap[1]))

    def prepare(self, seed: View, targets: Sequence[View]) -> None:
        """Compute the backbone features of the announced targets in batches (windowed schedule only), each
        framed by its camera's current focus crop; a focusing engine's frames of a camera it has not
        segmented yet wait for their crop."""
        if self.schedule != "windowed":
            return
        self._start_job(seed)
        # Room for two announcements of every object: the frames of the one before may still be waiting
        # (segmented a round late, or references), and each object may see them through its own crop.
        self._job.features.resize(max(FEATURE_CACHE, 2 * len(targets)) * self._job.objects)
        self._job.announce(targets)
        # Before a focusing engine's first frame of a camera, that camera's crop is still to be found (a
        # first look at the whole frame): its frames wait for it rather than be framed whole and again.
        known = [v for v in targets if not self.focus or v.camera in self._camera_crop]
        self._compute_missing(seed, [(v, self._camera_crop.get(v.camera)) for v in known])

    def _compute_missing(self, seed: View, framed: Sequence[tuple[View, SquareCrop | None]]) -> None:
        """Backbone features of the framed views the cache lacks, in as few windows as they fill."""
        missing: dict[Key, tuple[View, SquareCrop | None]] = {}
        for view, crop in framed:
            key = (view.camera, view.index, crop)
            if key not in self._job.features:
                missing.setdefault(key, (view, crop))
        self._compute_features(seed, list(missing.values()))

    def _reframed(
        self, targets: Sequence[tuple[View, SquareCrop | None]]
    ) -> list[tuple[View, SquareCrop | None]]:
        """Targets seen through a crop other than the one they were announced with, each with its camera's
        next announced frames through the same crop: the window a moved object fills."""
        framed = []
        for view, crop in targets:
            if (view.camera, view.index, crop) not in self._job.features:
                framed.append((view, crop))
                framed += [(v, crop) for v in self._job.following(view, self.window - 1)]
        return framed

    def _cached(self, seed: View, view: View, crop: SquareCrop | None) -> tuple[torch.Tensor, torch.Tensor]:
        key = (view.camera, view.index, crop)
        if key not in self._job.features:
            self._compute_features(seed, [(view, crop)])
        features = self._job.features.get(key)
        assert features is not None  # just computed, and the most recent entry
        return features

    def _source_points(self, ref: Reference, crop: SquareCrop | None, mask: np.ndarray) -> torch.Tensor:
        """K-Means points (N, 2) of a framed reference mask, computed once per framed reference frame (a
        frame is a temporal reference of its own camera and a cross reference of the others)."""
        key = (ref.view.camera, ref.view.index, crop)
        points = self._points.peek(key)  # oldest out first: a use does not keep points longer
        if points is None:
            points = self.model.head.source_points(torch.from_numpy(mask)[None])[0]
            self._points.put(key, points)
        return points

    def _remember(self, view: View, crop: SquareCrop | None) -> None:
        self._framed.put((view.camera, view.index), (view, crop))
        self._camera_crop[view.camera] = crop

    def _state(self, crop: SquareCrop | None) -> FrameState:
        """What a segmented frame carries forward: the crop it was seen through and the backbone window."""
        return {"crop": None if crop is None else [crop.x1, crop.y1, crop.side], "window": self.window}

    def replay(self, seed: View, target: View, state: FrameState | None) -> None:
        """A journaled frame on `--resume`: remember the crop it was seen through, as `segment_many` did, and
        go on with the window it had (an out-of-memory back-off stays backed off)."""
        self._start_job(seed)
        if state is None:
            return
        self._backoff.window = int(state["window"])
        crop = state["crop"]
        height, width = target.image.shape[:2]
        self._remember(target, None if crop is None else SquareCrop(*map(int, crop), height, width))

    def _crop_seen(self, view: View) -> SquareCrop | None:
        """The crop `view` was segmented through (None: whole, or not segmented in this job)."""
        seen = self._framed.peek((view.camera, view.index))
        return seen[1] if seen is not None and seen[0] is view else None

    def _framed_reference(self, ref: Reference) -> tuple[Framing, np.ndarray]:
        """A reference as the model sees it -> (framing, its (S, S) mask): as it was when it was segmented
        (its cached pass), or whole if its mask would not survive that crop."""
        framing = self._framing(ref.view, self._crop_seen(ref.view))
        mask = framing.mask(ref.mask)
        if framing.crop is not None and not mask.any():
            framing = self._framing(ref.view, None)
            mask = framing.mask(ref.mask)
        return framing, mask

    # -- segmentation -----------------------------------------------------------------------------------

    def segment(self, target: View, refs: Sequence[Reference]) -> Prediction:
        return self.segment_many([(target, refs)])[0]

    def segment_many(self, requests: Sequence[tuple[View, Sequence[Reference]]]) -> list[Prediction]:
        """Fuse, per target, the predictions of its usable references (non-empty masks; the seed is left
        out when a cross reference is given; none usable -> empty mask, score 0). The pairs of all targets
        go through the tracker and the head together."""
        return self.segment_objects([self], [requests])[0]

    def segment_objects(
        self,
        engines: Sequence[Engine],
        requests: Sequence[Sequence[tuple[View, Sequence[Reference]]]],
    ) -> list[list[Prediction]]:
        """`segment_many` for every object at once (`engines`: this engine's twins from `for_objects`): the
        objects that follow a target's camera look through one crop around all of them (one backbone pass),
        a lost object whose whole-frame look lands inside it too, and every object's pairs go through the
        tracker and the head as one batch."""
        twins = [e for e in engines if isinstance(e, LearnedEngine)]
        assert len(twins) == len(engines), "twins of one learned engine"
        tasks = [
            [twin._task(target, refs) for target, refs in reqs]
            for twin, reqs in zip(twins, requests, strict=True)
        ]
        flat = [task for object_tasks in tasks for task in object_tasks]
        # No mask of the target's camera to go by: look at the whole frame first, then focus where it points.
        searching = [t for t in flat if t.usable and t.search]
        for task, look in zip(searching, self._predict(searching), strict=True):
            task.look = look
        if self.focus:
            for column in zip(*tasks, strict=True):  # one target, every object
                _share_crop(column)
        for task in searching:
            if task.crop is None:  # the whole frame it looked at is the frame it is seen in
                task.result = task.look
        todo = [t for t in flat if t.usable and t.result is None]
        for task, result in zip(todo, self._predict(todo), strict=True):
            task.result = result
        for target, _ in requests[0]:  # every object is asked for the same targets
            self._job.segmented(target)
        return [[task.owner._prediction(task) for task in object_tasks] for object_tasks in tasks]

    def _prediction(self, task: _Task) -> Prediction:
        """A predicted task as this object's Prediction; the crop it was seen through is remembered."""
        if task.result is None:
            return Prediction(np.zeros(task.target.image.shape[:2], dtype=bool), 0.0)
        self._remember(task.target, task.crop)
        logits, score = task.result
        return Prediction(mask=(logits > 0).cpu().numpy(), score=score, state=self._state(task.crop))

    def _task(self, target: View, refs: Sequence[Reference]) -> _Task:
        """What one target needs: its usable references, its job's seed, its focus crop."""
        usable = [ref for ref in refs if ref.mask.any()]
        if any(ref.kind == "cross" for ref in usable):
            # Another camera at this very instant already carries the seed's anchoring (its mask was
            # predicted from the seed) without the seed's time gap; one pair fewer per frame.
            usable = [ref for ref in usable if ref.kind != "seed"]
        for ref in usable:
            if ref.mask.shape != ref.view.image.shape[:2]:
                raise ValueError(
                    f"reference mask {ref.mask.shape} does not match its frame {ref.view.image.shape[:2]}"
                )
        seed = next((ref.view for ref in refs if ref.kind == "seed"), None)
        self._start_job(seed)
        previous = next((r for r in usable if r.kind == "temporal" and r.view.camera == target.camera), None)
        if self.focus and previous is not None and previous.mask.shape == target.image.shape[:2]:
            # Its crop follows the previous mask, chosen with the other objects' (`_share_crop`).
            return _Task(self, target, usable, seed, previous, None, search=False)
        # Without a mask of this camera to go by, a focusing engine looks at the whole frame first.
        return _Task(self, target, usable, seed, None, None, search=self.focus)

    def _predict(self, tasks: Sequence[_Task]) -> list[tuple[torch.Tensor, float]]:
        """Each task's target seen through its crop and its references' fused prediction
        -> per task (frame logits (H, W), presence score). All pairs go through the model as one batch."""
        if not tasks:
            return []
        framings = [self._framing(t.target, t.crop) for t in tasks]
        # One entry per pair: (task, target framing, reference, reference framing, reference mask (S, S)).
        pairs = [
            (t, f, ref, *t.owner._framed_reference(ref))
            for t, f in zip(tasks, framings, strict=True)
            for ref in t.usable
        ]
        masks = torch.from_numpy(np.stack([m for *_, m in pairs])).to(self.device)
        limits = torch.tensor([f.letterbox.content_hw for _, f, *_ in pairs], device=self.device)
        seed = tasks[0].seed

        with torch.inference_mode(), self._autocast():
            if self.schedule == "pair" or seed is None:
                images = np.stack(
                    [
                        np.stack([rf.image(ref.view.image), f.image(t.target.image)])
                        for t, f, ref, rf, _ in pairs
                    ]
                )
                out = self.model.segment_pairs(self._upload(images), masks, limits)
            else:
                # Whatever the cache lacks, in shared windows: targets whose crop moved (and the frames
                # after them), then references framed otherwise than when they were segmented.
                moved = self._reframed([(t.target, f.crop) for t, f in zip(tasks, framings, strict=True)])
                refs = [(ref.view, rf.crop) for _, _, ref, rf, _ in pairs if ref.kind != "seed"]
                self._compute_missing(seed, [*moved, *refs])
                fmaps, points = [], []
                for t, f, ref, rf, mask in pairs:
                    seed_feat, target_feat = self._cached(seed, t.target, f.crop)
                    # The seed pair is the very pair the backbone saw; other references bring their own
                    # pass's features of their frame.
                    source = seed_feat if ref.kind == "seed" else self._cached(seed, ref.view, rf.crop)[1]
                    fmaps.append(torch.stack([source, target_feat]))
                    points.append(t.owner._source_points(ref, rf.crop, mask))
                out = self.model.segment_features(
                    torch.stack(fmaps), masks, limits, torch.stack(points).to(self.device)
                )
        results = []
        logits = out.logits.float().split([len(t.usable) for t in tasks])
        for task, framing, task_logits in zip(tasks, framings, logits, strict=True):
            weights = torch.tensor([KIND_WEIGHTS[ref.kind] for ref in task.usable])
            fused = fuse_logits(task_logits, weights)
            score = presence_score(framing.letterbox.content(fused)[None])[0]
            results.append((framing.unmap_logits(fused), float(score)))
        return results


def follow(box: Box | None, current: SquareCrop | None, shape: tuple[int, int]) -> SquareCrop | None:
    """The crop for the frame after one whose objects' box is `box` (same camera), seen through `current`:
    that crop while the box still fits it, else the crop the box calls for now (a focused camera keeps
    focusing up to KEEP_MAX)."""
    assert box is not None  # usable references have non-empty masks
    if current is not None and still_fits(current, box):
        return current
    return focus_crop(box, shape, KEEP_MAX if current is not None else FOCUS_MAX)


def _share_crop(column: Sequence[_Task]) -> None:
    """One target's tasks, one per object. Those following the camera look through one crop, chosen from
    all their previous masks and the crop the first of them saw its previous frame through; a searching
    object whose whole-frame look lands well inside that crop (or anywhere, when they look at the whole
    frame) shares it, the others look through one crop around where they all landed."""
    following = [t for t in column if t.usable and t.look is None and t.previous is not None]
    searching = [t for t in column if t.look is not None]
    shared: SquareCrop | None = None
    if following:
        box = bbox(np.logical_or.reduce([t.previous.mask for t in following]))  # type: ignore[union-attr]
        first = following[0].previous
        assert first is not None
        shared = follow(box, following[0].owner._crop_seen(first.view), first.mask.shape)
        for task in following:
            task.crop = shared
    apart = []
    for task in searching:
        box = search_box(task.look[0])  # type: ignore[index]
        if following and (shared is None or within(shared, box)):
            task.crop = shared
        else:
            apart.append((task, box))
    if apart:
        box = functools.reduce(Box.union, [b for _, b in apart])
        crop = focus_crop(box, column[0].target.image.shape[:2])
        for task, _ in apart:
            task.crop = crop
