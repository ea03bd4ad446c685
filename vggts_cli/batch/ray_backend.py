"""`vggts batch --ray ADDRESS`: the jobs run on an existing Ray cluster. Ray is imported only here, lazily.

One actor per GPU of the cluster (per CPU where it has none) runs `runner.run_job` for job after job and
keeps its engines, so a model is loaded once per actor. Ray does the scheduling (ActorPool), the fault
handling (an actor whose process dies is restarted and its job retried, up to MAX_ATTEMPTS runs) and the
progress channel (ray.util.queue). Inputs and OUTDIR must be paths that every node sees.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from vggts_cli.batch.manifest import BatchJob
from vggts_cli.batch.runner import MAX_ATTEMPTS, EngineCache, JobOutcome, ProgressFn, limit_threads, run_job
from vggts_cli.errors import UsageError, VggtsError
from vggts_cli.jobs import PropagateJob

POLL_S = 0.2


def import_ray() -> Any:
    """The `ray` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray, an optional extra: pip install 'vggts[ray]'") from None
    return ray


class JobWorker:
    """A Ray actor: runs jobs one after another, reporting progress into a ray.util.queue.Queue."""

    def __init__(self) -> None:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        limit_threads(max(1, int(cpus)))
        self.engines = EngineCache()

    def run(self, job_id: str, job: PropagateJob, reports: Any) -> JobOutcome:
        return run_job(job_id, job, self.engines, lambda ticks: reports.put_nowait((job_id, ticks)))


def _reachable(address: str) -> None:
    """Fail fast where nothing listens at HOST:PORT: ray.init would retry for minutes."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray takes HOST:PORT of the cluster's head, or auto; got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise VggtsError(f"no Ray cluster at {address}: {e.strerror or e}") from None


class RayCluster:
    """Jobs as calls on JobWorker actors of the Ray cluster at `address` ("auto": the running one)."""

    def __init__(self, address: str, workers: int | None = None) -> None:
        import_ray()
        if address != "auto":
            _reachable(address)
        self.address = address
        self.workers = workers
        self.description = f"ray {address}"

    def execute(self, jobs: Sequence[BatchJob], progress: ProgressFn) -> Iterator[JobOutcome]:
        ray = import_ray()
        # Ray prints cluster notices (a task retried after its worker died) on stdout; stdout is for --json.
        with contextlib.redirect_stdout(sys.stderr):
            try:
                ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise VggtsError(f"no Ray cluster at {self.address}: {str(e).splitlines()[0]}") from None
            try:
                yield from self._run(ray, jobs, progress)
            finally:
                ray.shutdown()

    def _run(self, ray: Any, jobs: Sequence[BatchJob], progress: ProgressFn) -> Iterator[JobOutcome]:
        from ray.util.actor_pool import ActorPool
        from ray.util.queue import Empty, Queue

        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = int(ray.cluster_resources().get("CPU", 1))
        actors = min(self.workers or gpus or cpus, len(jobs))
        self.description = f"ray {self.address}, {actors} workers on {'GPU' if gpus else 'CPU'}"
        reports = Queue(actor_options={"num_cpus": 0})
        worker = ray.remote(JobWorker).options(
            num_cpus=1,
            num_gpus=1 if gpus else 0,
            max_restarts=-1,  # a lost worker comes back; MAX_ATTEMPTS bounds each job's runs
            max_task_retries=MAX_ATTEMPTS - 1,
        )
        pool = ActorPool([worker.remote() for _ in range(actors)])
        for job in jobs:
            pool.submit(lambda actor, job: actor.run.remote(job.id, job.job, reports), job)

        def drain() -> None:
            try:
                for job_id, ticks in reports.get_nowait_batch(reports.qsize()):
                    progress(job_id, ticks)
            except Empty:
                pass

        returned: set[str] = set()
        lost: str | None = None
        while pool.has_next():
            try:
                outcome = pool.get_next_unordered(timeout=POLL_S)
            except TimeoutError:
                drain()
                continue
            except ray.exceptions.RayError as e:  # retries used up; the pool cannot say for which job
                lost = str(e).splitlines()[0]
                continue
            drain()
            returned.add(outcome.id)
            yield outcome
        for job in jobs:
            if job.id not in returned:
                yield JobOutcome(job.id, "failed", error=f"lost on the cluster: {lost}")
