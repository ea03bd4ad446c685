"""Rendering: decode one camera front to back once more and feed every frame and its mask to the sinks."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing

import numpy as np

from vggts_cli.jobs import Camera, PropagateJob
from vggts_cli.masks import rle
from vggts_cli.masks.objects import TrackedObject
from vggts_cli.pipeline.journal import Journal
from vggts_cli.pipeline.walk import PREFETCH, ProgressFn
from vggts_cli.sinks.base import Sink, aborted_on_error
from vggts_cli.sinks.outputs import build_sinks
from vggts_cli.video.inputs import open_camera
from vggts_cli.video.prefetch import prefetch


def render(
    job: PropagateJob,
    objects: Sequence[TrackedObject],
    cam: Camera,
    index: int,
    journal: Journal,
    tick: ProgressFn,
) -> list[Sink]:
    """Write OUT/<camera>/ for camera number `index` from the journal's masks of `objects`; returns its
    sinks finished but not committed (the outputs still under partial names: the job commits them once
    every camera's are finished). On any error every sink's partial output is removed."""
    out_dir = job.out / cam.name
    out_dir.mkdir(parents=True, exist_ok=True)
    size = [cam.info.height, cam.info.width]

    def recorded(frame: int) -> tuple[np.ndarray, tuple[float, ...]]:
        """Frame `frame`'s (O, H, W) bool masks and scores, from the journal."""
        entries = journal.records[(index, frame)]
        masks = np.stack([rle.decode({"size": size, "counts": e.counts}) for e in entries])
        return masks, tuple(e.score for e in entries)

    sinks = build_sinks(job.write, out_dir, cam.info, job.sink_options, objects, upcoming=recorded)
    with aborted_on_error(sinks):
        with open_camera(cam.info) as reader, closing(prefetch(reader.frames(), depth=PREFETCH)) as frames:
            for frame in frames:
                masks, scores = recorded(frame.index)
                for sink in sinks:
                    sink.write(frame, masks, scores)
                tick("render", 1)
        for sink in sinks:
            sink.finish()
    return sinks
