"""`vggts batch` on this machine: a bounded pool of worker processes, each running `runner.run_job`.

A worker process keeps its engines (EngineCache) across jobs. When a worker dies under a job (killed, out of
memory), Python's pool breaks and every job it was running fails with BrokenProcessPool; those jobs are
submitted again to a fresh pool and continue from their journals, up to MAX_ATTEMPTS runs each.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from vggts_cli.batch.manifest import BatchJob
from vggts_cli.batch.runner import MAX_ATTEMPTS, EngineCache, JobOutcome, ProgressFn, limit_threads, run_job
from vggts_cli.jobs import PropagateJob

GIB = 1 << 30
# Memory one worker may need: the classic engine holds a few frames and masks; the learned one a 1B model.
WORKER_MEMORY = {"classic": 1 * GIB, "vggts": 8 * GIB}
POLL_S = 0.2

_engines: EngineCache | None = None
_reports: multiprocessing.Queue | None = None


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def available_memory() -> int:
    """Bytes of memory available to new processes (MemAvailable), or all physical memory elsewhere."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_workers(jobs: Sequence[BatchJob]) -> int:
    """One worker per core, as many as memory holds for the hungriest engine, no more than jobs."""
    need = max((WORKER_MEMORY.get(job.job.engine, 8 * GIB) for job in jobs), default=GIB)
    return max(1, min(available_cpus(), available_memory() // need, len(jobs)))


def _init_worker(threads: int, reports: multiprocessing.Queue) -> None:
    global _engines, _reports
    limit_threads(threads)
    _engines, _reports = EngineCache(), reports


def _work(job_id: str, job: PropagateJob) -> JobOutcome:
    assert _engines is not None and _reports is not None, "run in a pool started by LocalPool"
    reports = _reports
    return run_job(job_id, job, _engines, lambda ticks: reports.put((job_id, ticks)))


def _drain(reports: multiprocessing.Queue, started: set[str], progress: ProgressFn) -> None:
    """Pass on the workers' progress reports; a job that reported has started."""
    while True:
        try:
            job_id, ticks = reports.get_nowait()
        except queue.Empty:
            return
        started.add(job_id)
        progress(job_id, ticks)


class LocalPool:
    """A pool of `workers` processes on this machine (default: `default_workers`)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers
        self.description = "local"

    def execute(self, jobs: Sequence[BatchJob], progress: ProgressFn) -> Iterator[JobOutcome]:
        workers = self.workers or default_workers(jobs)
        self.description = f"local, {workers} workers"
        threads = max(1, available_cpus() // workers)
        context = multiprocessing.get_context("spawn")  # no fork of a process that runs threads
        remaining = {job.id: job for job in jobs}
        attempts = dict.fromkeys(remaining, 0)
        while remaining:
            # A fresh queue per pool: a worker killed while writing may leave the old one locked.
            reports = context.Queue()
            started: set[str] = set()
            pool = ProcessPoolExecutor(
                workers, context, initializer=_init_worker, initargs=(threads, reports)
            )
            try:
                futures: dict[Future, BatchJob] = {
                    pool.submit(_work, job.id, job.job): job for job in remaining.values()
                }
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
                    _drain(reports, started, progress)
                    for future in done:
                        job = futures[future]
                        try:
                            outcome = future.result()
                        except BrokenProcessPool:
                            # Charge only the jobs that had started: the others never ran.
                            attempts[job.id] += job.id in started
                            if attempts[job.id] < MAX_ATTEMPTS:
                                continue
                            outcome = JobOutcome(
                                job.id, "failed", error=f"its worker process died {MAX_ATTEMPTS} times"
                            )
                        del remaining[job.id]
                        yield outcome
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
                reports.close()
