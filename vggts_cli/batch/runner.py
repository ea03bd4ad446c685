"""Run checked jobs on a backend: the work of one job, the batch record (OUTDIR/batch.json), resume, progress.

Every backend runs a job through `run_job`, which is `vggts propagate`'s own `check_job` + `run` with
`resume=True` on the job's folder: a first attempt starts a fresh journal, a retry after a killed worker
continues it, and either way the outputs equal an undisturbed run's. The backends only decide where
`run_job` runs (local.py: a process pool; ray_backend.py: Ray actors) and stream its results back.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from vggts_cli.engines.base import Engine
from vggts_cli.engines.registry import make_engine
from vggts_cli.errors import UsageError, VggtsError
from vggts_cli.fsutil import check_folder, write_text, writing_under
from vggts_cli.jobs import PropagateJob, check_job
from vggts_cli.pipeline.run import run

if TYPE_CHECKING:
    from vggts_cli.batch.manifest import BadRow, BatchJob

BATCH_FILE = "batch.json"
MAX_ATTEMPTS = 3  # runs of one job whose worker died under it, before the job counts as failed
REPORT_EVERY_S = 0.25  # how often a worker sends its job's progress

# progress(job id, ticks so far in this attempt): a tick is a frame segmented or a frame written, so a job
# of F frames (all cameras) ends at 2 F ticks.
ProgressFn = Callable[[str, int], None]


@dataclass
class JobOutcome:
    """What one job came to: `status` is "done" or "failed"; seconds spent in the worker, frames of all
    cameras, the error's one line, and `vggts propagate --json`'s per-camera summary."""

    id: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    cameras: list[dict] = field(default_factory=list)


class Backend(Protocol):
    """Where jobs run. `execute` yields one outcome per job as each finishes (any order) and calls
    `progress` from the calling thread in between."""

    description: str

    def execute(self, jobs: Sequence[BatchJob], progress: ProgressFn) -> Iterator[JobOutcome]: ...


# --------------------------------------------------------------------------- inside a worker process


def limit_threads(threads: int) -> None:
    """Keep a worker to its share of the cores: N workers x all-core thread pools oversubscribe them."""
    import cv2

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)  # read by torch and BLAS when (lazily) imported later
    cv2.setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


class EngineCache:
    """Engines with weights are built on first use and kept, so a worker loads a model once and serves many
    jobs. A weight-free engine is cheap to build and is built per job: the classic one caches frames by
    (camera, index), which another recording must not see."""

    def __init__(self) -> None:
        self._engines: dict[tuple[str, str | None, str, int | None, str | None], Engine] = {}

    def get(self, job: PropagateJob) -> Engine:
        key = (job.engine, job.model, job.device, job.adapt, job.detail)
        if job.model is None:
            return _engine_of(job)
        if key not in self._engines:
            self._engines[key] = _engine_of(job)
        return self._engines[key]


def _engine_of(job: PropagateJob) -> Engine:
    """A new engine for `job`'s engine options."""
    return make_engine(job.engine, job.model, job.device, adapt=job.adapt, detail=job.detail)


def run_job(
    job_id: str, job: PropagateJob, engines: EngineCache, report: Callable[[int], None]
) -> JobOutcome:
    """Run one job as `vggts propagate --resume` would; a failure of the job becomes a "failed" outcome.

    report(ticks) is called at most every REPORT_EVERY_S seconds, first with 0, last with the total.
    """
    start = time.perf_counter()
    ticks, last = 0, 0.0
    report(0)

    def tick(stage: str, n: int) -> None:
        nonlocal ticks, last
        ticks += n
        if time.perf_counter() - last >= REPORT_EVERY_S:
            last = time.perf_counter()
            report(ticks)

    try:
        summaries = run(check_job(replace(job, resume=True)), engines.get(job), tick)
    except Exception as e:  # a bad recording fails its own job; the batch goes on
        error = str(e) if isinstance(e, VggtsError) else f"{type(e).__name__}: {e}"
        return JobOutcome(job_id, "failed", seconds=time.perf_counter() - start, error=error.split("\n")[0])
    report(ticks)
    return JobOutcome(
        job_id,
        "done",
        frames=sum(s.frames for s in summaries),
        seconds=time.perf_counter() - start,
        cameras=[s.as_dict() for s in summaries],
    )


# --------------------------------------------------------------------------- the driver


class BatchRecord:
    """OUTDIR/batch.json: every job's status, frames, seconds and error, rewritten atomically as jobs end."""

    def __init__(self, out: Path, manifest: Path, backend: Backend) -> None:
        self.path = out / BATCH_FILE
        self.backend = backend
        self.doc: dict = {
            "manifest": str(manifest.resolve()),
            "out": str(out.resolve()),
            "backend": backend.description,
            "seconds": 0.0,
            "counts": {},
            "jobs": {},
        }

    @staticmethod
    def previous(out: Path) -> dict[str, dict]:
        """The done jobs of an earlier batch.json in `out` by id; none when it is missing or unreadable."""
        try:
            jobs = json.loads((out / BATCH_FILE).read_text())["jobs"]
            return {j["id"]: j for j in jobs if j["status"] == "done"}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def set(self, entry: dict) -> None:
        self.doc["jobs"][entry["where"]] = entry  # by row: a bad row may repeat another's id

    def summary(self) -> dict:
        """The record as written: jobs as a list, in manifest order."""
        jobs = list(self.doc["jobs"].values())
        counts: dict[str, int] = {}
        for j in jobs:
            counts[j["status"]] = counts.get(j["status"], 0) + 1
        frames = sum(j["frames"] for j in jobs if j["status"] == "done")
        seconds = self.doc["seconds"]
        return {
            **self.doc,
            "backend": self.backend.description,  # a backend tells its size once it has started
            "counts": counts,
            "frames": frames,
            "jobs_per_hour": round(counts.get("done", 0) * 3600 / seconds, 1) if seconds else 0.0,
            "jobs": jobs,
        }

    def write(self) -> None:
        """Rewrite batch.json; a disk that refuses it stops the batch with one line."""
        with writing_under(
            self.path.parent, "finished jobs keep their outputs (make room, then rerun with --resume)"
        ):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text(self.path, json.dumps(self.summary(), indent=2) + "\n")


def _entry(job: BatchJob, status: str, **values) -> dict:
    entry = {
        "id": job.id,
        "where": job.where,
        "status": status,
        "frames": 0,
        "seconds": 0.0,
        "error": None,
        "outputs": list(job.outputs),
        "spec": job.spec,
        "cameras": [],
    }
    return {**entry, **values}


def _complete(job: BatchJob, recorded: dict | None) -> bool:
    """A recorded run of the same job whose outputs are all still there."""
    return (
        recorded is not None
        and recorded.get("status") == "done"
        and recorded.get("spec") == job.spec
        and recorded.get("outputs") == list(job.outputs)
        and all((job.job.out / p).exists() for p in job.outputs)
    )


def check_out(out: Path, resume: bool) -> None:
    """Refuse an `out` that cannot be a folder, and to mix a new batch into an earlier one's folder."""
    check_folder(out)
    if not resume and (out / BATCH_FILE).exists():
        raise UsageError(
            f"{out} holds an earlier batch; pass --resume to continue it or choose another --out"
        )


# on_progress(jobs finished, jobs to run, frames done, frames to do): the CLI draws it.
BatchProgressFn = Callable[[int, int, float, int], None]


def run_batch(
    jobs: Sequence[BatchJob],
    bad: Sequence[BadRow],
    out: Path,
    manifest: Path,
    backend: Backend,
    resume: bool = False,
    on_progress: BatchProgressFn | None = None,
) -> dict:
    """Run `jobs` (bad rows are recorded, not run) on `backend`; returns the summary written to batch.json.

    With `resume`, jobs that an earlier batch.json records as done, with the same inputs and options and
    all outputs present, are kept and not run again. A frame counts once segmented and once written, so
    `on_progress` gets frames done as (segmented + written) / 2.
    """
    check_out(out, resume)
    record = BatchRecord(out, manifest, backend)
    todo = _plan(record, jobs, bad, BatchRecord.previous(out) if resume else {})
    start = time.perf_counter()
    record.write()

    by_id = {job.id: job for job in todo}
    ticks = dict.fromkeys(by_id, 0)
    total_frames = sum(job.frames for job in todo)
    report = on_progress or (lambda finished, jobs, frames, total: None)
    finished = 0

    def progress(job_id: str, n: int) -> None:
        # A retried job starts again from 0 and re-counts its journal: keep the highest count seen.
        ticks[job_id] = max(ticks[job_id], min(n, 2 * by_id[job_id].frames))
        report(finished, len(todo), sum(ticks.values()) / 2, total_frames)

    report(0, len(todo), 0, total_frames)
    for outcome in backend.execute(todo, progress):
        job = by_id[outcome.id]
        if outcome.status == "done":
            ticks[job.id] = 2 * job.frames
        finished += 1
        report(finished, len(todo), sum(ticks.values()) / 2, total_frames)
        values = asdict(outcome)
        values["seconds"] = round(values["seconds"], 3)
        record.set(_entry(job, **{k: v for k, v in values.items() if k != "id"}))
        record.doc["seconds"] = round(time.perf_counter() - start, 3)
        record.write()
    record.doc["seconds"] = round(time.perf_counter() - start, 3)
    record.write()
    return record.summary()


def _plan(
    record: BatchRecord, jobs: Sequence[BatchJob], bad: Sequence[BadRow], previous: dict[str, dict]
) -> list[BatchJob]:
    """Record every row (kept from `previous`, pending, or bad); returns the jobs still to run."""
    todo = []
    for job in jobs:
        if _complete(job, previous.get(job.id)):
            record.set({**previous[job.id], "where": job.where})
        else:
            record.set(_entry(job, "pending"))
            todo.append(job)
    for row in bad:
        record.set(
            {
                "id": row.id or row.where,
                "where": row.where,
                "status": "bad",
                "frames": 0,
                "seconds": 0.0,
                "error": row.error,
            }
        )
    return todo
