"""`vggts propagate` as a function: segment every frame of every camera (the walk), then write the outputs.

Two stages. (1) Segment: walk the cameras (pipeline/walk.py), ask the engine for each frame, record each
mask in the journal. (2) Render: decode each video once more, front to back, and feed frames and masks to the
sinks (pipeline/render.py). Memory holds a few frames and the compact RLE masks, never the video.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from vggts_cli.engines.base import Engine
from vggts_cli.fsutil import writing_under
from vggts_cli.jobs import PreparedJob, fingerprint
from vggts_cli.pipeline.journal import STATE_DIR, Journal, replace_earlier_outputs
from vggts_cli.pipeline.lock import JobLock
from vggts_cli.pipeline.render import render
from vggts_cli.pipeline.walk import ProgressFn, Walk
from vggts_cli.sinks.base import Sink, aborted_on_error


@dataclass
class CameraSummary:
    """Per camera: frames, mean presence score (over frames and objects) and the seconds spent on it
    (segmenting and rendering)."""

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


def _segment(prepared: PreparedJob, engine: Engine, journal: Journal, tick: ProgressFn) -> list[float]:
    """The walk, unless the journal is complete; engine seconds per camera."""
    if journal.complete:
        tick("segment", sum(c.info.num_frames for c in prepared.cameras))
        return [0.0] * len(prepared.cameras)
    walk = Walk(prepared, engine, journal, tick)
    walk.run()
    journal.mark_complete()
    return walk.seconds


def run(prepared: PreparedJob, engine: Engine, progress: ProgressFn | None = None) -> list[CameraSummary]:
    """Segment every frame of every camera, then write the requested outputs; returns per-camera figures.

    The output folder is locked for the job's life (a second job on it fails at once); the outputs of an
    earlier job there that this one does not write are removed before this job's are renamed into place.
    Any failure leaves no output of this job; a disk that refuses a write (full, read-only) is one
    VggtsError line, and the journal it leaves lets --resume continue.
    """
    job = prepared.job
    tick = progress or (lambda stage, n: None)
    kept = "no output was kept (make room, then rerun with --resume)"
    with writing_under(job.out, kept), JobLock(job.out, job.out / STATE_DIR):
        journal = Journal(job.out, fingerprint(prepared), resume=job.resume)
        finished: list[Sink] = []  # every camera's outputs, complete under partial names
        try:
            with aborted_on_error(finished):
                seconds = _segment(prepared, engine, journal, tick)
                for i, cam in enumerate(prepared.cameras):
                    start = time.perf_counter()
                    finished += render(job, prepared.objects, cam, i, journal, tick)
                    seconds[i] += time.perf_counter() - start
                # Only a job that wrote everything puts anything under a final name, and only then do the
                # earlier job's outputs that this one does not write go.
                replace_earlier_outputs(job.out, prepared.outputs())
                for sink in finished:
                    sink.commit()
        finally:
            journal.close()
    return [
        CameraSummary(
            cam.name,
            str(cam.info.path),
            cam.info.num_frames,
            float(np.mean([[e.score for e in journal.records[(i, f)]] for f in range(cam.info.num_frames)])),
            seconds[i],
        )
        for i, cam in enumerate(prepared.cameras)
    ]
