"""`vggts propagate` as a function: validate a job, segment every frame of every camera, write the outputs.

Two stages. (1) Segment: walk the cameras (engine/schedule.py), ask the engine for each frame, record each
mask in the journal. (2) Render: decode each video once more, front to back, and feed frames and masks to the
sinks. Memory holds a few frames and the compact RLE masks, never the video.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vggts_cli.engine.base import Engine, Reference, View
from vggts_cli.engine.journal import STATE_DIR, Journal
from vggts_cli.engine.registry import default_engine
from vggts_cli.engine.schedule import plan_steps
from vggts_cli.errors import UsageError
from vggts_cli.masks import rle
from vggts_cli.masks.io import load_seed_mask
from vggts_cli.sinks import OUTPUT_KINDS, OUTPUT_NAMES, build_sinks
from vggts_cli.sinks.base import Sink, SinkOptions
from vggts_cli.video.prefetch import prefetch
from vggts_cli.video.reader import Frame, VideoInfo, VideoReader, probe
from vggts_cli.video.sync import world_times

# progress(stage, frames_done_increment): the CLI draws it; the library stays silent.
ProgressFn = Callable[[str, int], None]
PREFETCH = 8  # frames decoded ahead per camera, on a background thread


@dataclass(frozen=True)
class PropagateJob:
    """Everything `vggts propagate` was asked to do."""

    src: Path
    dsts: tuple[Path, ...]
    mask: Path
    out: Path
    mask_frame: int = 0
    write: tuple[str, ...] = ("rle", "overlay")
    sink_options: SinkOptions = field(default_factory=SinkOptions)
    engine: str = field(default_factory=default_engine)
    model: str | None = None
    device: str = "auto"
    offsets: tuple[tuple[str, float], ...] = ()
    resume: bool = False
    overwrite: bool = False


@dataclass(frozen=True)
class Camera:
    """One input video: its unique output name, metadata, and world-time offset (seconds)."""

    name: str
    info: VideoInfo
    offset: float

    @property
    def world_times(self) -> np.ndarray:
        return world_times(self.info, self.offset)


@dataclass
class CameraSummary:
    name: str
    video: str
    frames: int
    mean_score: float
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "camera": self.name,
            "video": self.video,
            "frames": self.frames,
            "mean_score": round(self.mean_score, 4),
            "seconds": round(self.seconds, 3),
            "frames_per_second": round(self.fps, 2),
        }


def camera_names(paths: Sequence[Path]) -> list[str]:
    """File stems made unique in order: ego, exo, exo-2, …"""
    names: list[str] = []
    for path in paths:
        name, n = path.stem, 1
        while name in names:
            n += 1
            name = f"{path.stem}-{n}"
        names.append(name)
    return names


@dataclass(frozen=True)
class PreparedJob:
    job: PropagateJob
    cameras: tuple[Camera, ...]  # cameras[0] is the seed's camera
    seed_mask: np.ndarray

    def outputs(self) -> list[Path]:
        return [self.job.out / cam.name / OUTPUT_NAMES[k] for cam in self.cameras for k in self.job.write]


def prepare(job: PropagateJob) -> PreparedJob:
    """Check everything before any work starts: one clear error, nothing written."""
    unknown = [k for k in job.write if k not in OUTPUT_KINDS]
    if unknown or not job.write:
        raise UsageError(
            f"--write takes a comma list of {', '.join(OUTPUT_KINDS)}; got {','.join(job.write)}"
        )
    paths = (job.src, *job.dsts)
    resolved = [p.resolve() for p in paths]
    if len(set(resolved)) != len(resolved):
        raise UsageError("the same video is given twice")
    out = job.out.resolve()
    for p in (*resolved, job.mask.resolve()):
        if out == p or out in p.parents:
            raise UsageError(f"--out {job.out} holds the input {p}; choose a folder outside the inputs")
    infos = [probe(p) for p in paths]
    names = camera_names(paths)
    offsets = dict(job.offsets)
    for name in offsets:
        if name not in names:
            raise UsageError(f"--offset names camera '{name}', but the cameras are: {', '.join(names)}")
    cameras = tuple(Camera(n, info, offsets.get(n, 0.0)) for n, info in zip(names, infos, strict=True))
    seed = cameras[0].info
    if not 0 <= job.mask_frame < seed.num_frames:
        raise UsageError(
            f"--mask-frame {job.mask_frame} is out of range: {job.src} has {seed.num_frames} frames "
            f"(0..{seed.num_frames - 1})"
        )
    seed_mask = load_seed_mask(job.mask, seed.width, seed.height)
    prepared = PreparedJob(job, cameras, seed_mask)
    if not (job.resume or job.overwrite):
        if (job.out / STATE_DIR).exists():
            raise UsageError(f"{job.out} holds an earlier job; pass --resume to continue it or --overwrite")
        existing = [p for p in prepared.outputs() if p.exists()]
        if existing:
            raise UsageError(f"{existing[0]} exists; pass --overwrite to replace it or choose another --out")
    return prepared


def fingerprint(prepared: PreparedJob) -> dict:
    """What must not change between a killed run and its --resume."""
    job = prepared.job
    mask_digest = hashlib.sha256(np.packbits(prepared.seed_mask).tobytes()).hexdigest()
    return {
        "videos": [
            {
                "path": str(c.info.path.resolve()),
                "size": c.info.path.stat().st_size,
                "frames": c.info.num_frames,
            }
            for c in prepared.cameras
        ],
        "offsets": [c.offset for c in prepared.cameras],
        "mask_sha256": mask_digest,
        "mask_frame": job.mask_frame,
        "engine": job.engine,
        "model": job.model,
    }


def run(prepared: PreparedJob, engine: Engine, progress: ProgressFn | None = None) -> list[CameraSummary]:
    """Segment every frame of every camera, then write the requested outputs; returns per-camera figures."""
    job = prepared.job
    tick = progress or (lambda stage, n: None)
    journal = Journal(job.out, fingerprint(prepared), resume=job.resume)
    seconds = [0.0] * len(prepared.cameras)
    finished: list[Sink] = []  # every camera's outputs, complete under partial names
    try:
        if not journal.complete:
            _segment(prepared, engine, journal, seconds, tick)
            journal.mark_complete()
        else:
            tick("segment", sum(c.info.num_frames for c in prepared.cameras))
        for i, cam in enumerate(prepared.cameras):
            start = time.perf_counter()
            finished += _render(job, cam, i, journal, tick)
            seconds[i] += time.perf_counter() - start
        # Only a job that wrote everything puts anything under a final name.
        for sink in finished:
            sink.commit()
    except BaseException:
        for sink in finished:
            sink.abort()
        raise
    finally:
        journal.close()
    summaries = []
    for i, cam in enumerate(prepared.cameras):
        scores = [journal.records[(i, f)][1] for f in range(cam.info.num_frames)]
        summaries.append(
            CameraSummary(
                cam.name, str(cam.info.path), cam.info.num_frames, float(np.mean(scores)), seconds[i]
            )
        )
    return summaries


def _segment(
    prepared: PreparedJob, engine: Engine, journal: Journal, seconds: list[float], tick: ProgressFn
) -> None:
    """Walk all frames in schedule order, segmenting those the journal does not hold yet."""
    cams = prepared.cameras
    s = prepared.job.mask_frame
    steps = list(plan_steps(cams[0].world_times, [c.world_times for c in cams[1:]], s))
    forward = [st for st in steps if st.direction > 0]
    backward = [st for st in steps if st.direction < 0]

    with ExitStack() as stack:
        readers = [stack.enter_context(VideoReader(c.info)) for c in cams]
        seed_frame = next(readers[0].frames(s, s + 1))
        seed_ref = Reference(View(cams[0].name, s, seed_frame.image), prepared.seed_mask, "seed")
        # Per camera: the last (view, mask) of the current leg, and the first of the forward leg, which
        # is where the backward leg of that camera starts from.
        temporal: list[Reference | None] = [None] * len(cams)
        leg_start: list[Reference | None] = [None] * len(cams)

        def segment(tasks: list[tuple[int, Frame, list[Reference]]]) -> list[Reference]:
            """Masks of independent frames (ci, frame, refs): from the journal, the seed's own, or the
            engine, which gets all the others in one call; each comes back as a temporal reference."""
            views = [View(cams[ci].name, frame.index, frame.image) for ci, frame, _ in tasks]
            masks: list[np.ndarray | None] = [None] * len(tasks)
            asked = []
            for n, (ci, frame, _) in enumerate(tasks):
                cached = journal.get(ci, frame.index)
                if cached is not None:
                    masks[n] = rle.decode({"size": list(frame.image.shape[:2]), "counts": cached[0]})
                elif ci == 0 and frame.index == s:
                    masks[n] = prepared.seed_mask
                    journal.append(ci, frame.index, rle.encode(prepared.seed_mask)["counts"], 1.0)
                else:
                    asked.append(n)
            if asked:
                start = time.perf_counter()
                predictions = engine.segment_many([(views[n], tasks[n][2]) for n in asked])
                share = (time.perf_counter() - start) / len(asked)
                for n, pred in zip(asked, predictions, strict=True):
                    ci, frame, _ = tasks[n]
                    masks[n] = pred.mask
                    seconds[ci] += share
                    journal.append(ci, frame.index, rle.encode(pred.mask)["counts"], float(pred.score))
            tick("segment", len(tasks))
            return [Reference(view, mask, "temporal") for view, mask in zip(views, masks, strict=True)]

        def walk(steps, seed_frames: Iterator[Frame], other_frames: list[Iterator[Frame]]) -> None:
            # Frames are read `engine.window` seed-camera steps at a time and announced to the engine
            # (`prepare`), which may batch their per-frame work. They are segmented in rounds: the seed
            # camera's next frame together with the other cameras' frames of the step before, whose cross
            # reference (the seed camera's frame of their step) is known by then. At most one frame of a
            # camera per round, so each frame's temporal reference is its camera's frame of the round before.
            ready: list[deque[tuple[Frame, Reference]]] = [deque() for _ in cams]

            def run_round(lead: Frame | None) -> None:
                tasks = []
                if lead is not None:
                    tasks.append((0, lead, [seed_ref] + ([temporal[0]] if temporal[0] else [])))
                for k in range(1, len(cams)):
                    if ready[k]:
                        frame, cross = ready[k].popleft()
                        tasks.append((k, frame, [cross, seed_ref] + ([temporal[k]] if temporal[k] else [])))
                for (ci, _, _), result in zip(tasks, segment(tasks), strict=True):
                    temporal[ci] = result
                    if ci > 0 and leg_start[ci] is None:
                        leg_start[ci] = result

            window = max(1, engine.window)
            for start in range(0, len(steps), window):
                batch: list[tuple[Frame, list[tuple[int, Frame]]]] = []
                for step in steps[start : start + window]:
                    lead = next(seed_frames)
                    assert lead.index == step.seed_index
                    others = []
                    for k, indices in enumerate(step.others, start=1):
                        for index in indices:
                            others.append((k, next(other_frames[k - 1])))
                            assert others[-1][1].index == index
                    batch.append((lead, others))
                pending = [
                    View(cams[ci].name, f.index, f.image)
                    for lead, others in batch
                    for ci, f in [(0, lead), *others]
                    if journal.get(ci, f.index) is None and not (ci == 0 and f.index == s)
                ]
                if pending:
                    engine.prepare(seed_ref.view, pending)
                for lead, others in batch:
                    run_round(lead)
                    assert temporal[0] is not None
                    cross = Reference(temporal[0].view, temporal[0].mask, "cross")
                    for k, frame in others:
                        ready[k].append((frame, cross))
                    while any(len(queue) > 1 for queue in ready):  # a camera faster than the seed's
                        run_round(None)
                journal.flush()
            while any(ready):
                run_round(None)
            journal.flush()

        def first(steps, k: int) -> int | None:
            return next((st.others[k - 1][0] for st in steps if st.others[k - 1]), None)

        def leg(steps, sources: list[Iterator[Frame]]) -> None:
            # Decoding runs in background threads (PyAV releases the GIL), a few frames ahead of the
            # engine; each leg's threads end before the next leg reads the same files.
            with ExitStack() as threads:
                frames = [threads.enter_context(closing(prefetch(src, depth=PREFETCH))) for src in sources]
                walk(steps, frames[0], frames[1:])

        leg(
            forward,
            [readers[0].frames(s)] + [readers[k].frames(first(forward, k) or 0) for k in range(1, len(cams))],
        )
        if backward:
            temporal = [Reference(seed_ref.view, prepared.seed_mask, "temporal"), *leg_start[1:]]
            leg(
                backward,
                [readers[0].frames_reversed(0, s)]
                + [readers[k].frames_reversed(0, _backward_stop(backward, k)) for k in range(1, len(cams))],
            )


def _backward_stop(backward, k: int) -> int:
    """One past the highest frame of camera k on the backward leg (0 when it has none)."""
    indices = [i for st in backward for i in st.others[k - 1]]
    return max(indices) + 1 if indices else 0


def _render(job: PropagateJob, cam: Camera, ci: int, journal: Journal, tick: ProgressFn) -> list[Sink]:
    """Decode one camera front to back and feed every frame and its mask to the sinks; returns them
    finished but not committed (their outputs still under partial names)."""
    out_dir = job.out / cam.name
    out_dir.mkdir(parents=True, exist_ok=True)
    sinks = build_sinks(job.write, out_dir, cam.info, job.sink_options)
    try:
        with VideoReader(cam.info) as reader, closing(prefetch(reader.frames(), depth=PREFETCH)) as frames:
            for frame in frames:
                counts, score = journal.records[(ci, frame.index)]
                mask = rle.decode({"size": [cam.info.height, cam.info.width], "counts": counts})
                for sink in sinks:
                    sink.write(frame, mask, score)
                tick("render", 1)
        for sink in sinks:
            sink.finish()
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return sinks
