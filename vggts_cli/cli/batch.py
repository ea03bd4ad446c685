"""`vggts batch`: many recordings from a manifest, on a local process pool or an existing Ray cluster."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

from vggts_cli.batch.runner import BatchProgressFn
from vggts_cli.cli.common import one_line_errors, progress_bar, report, say

JobsOpt = Annotated[
    Path,
    typer.Argument(help="Manifest: CSV or JSON Lines, one `vggts propagate` job a row."),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        metavar="N",
        help="Jobs at once [default: local: from cores and memory; Ray: one per GPU or CPU].",
    ),
]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="ADDRESS",
        help="Run on the Ray cluster at ADDRESS (host:port), or 'auto' for the running one "
        "[default: a local process pool].",
    ),
]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Skip jobs OUT/batch.json records as complete; continue the rest.")
]
JsonSummaryOpt = Annotated[bool, typer.Option("--json", help="Print the summary (batch.json) on stdout.")]


@one_line_errors
def batch(
    jobs: JobsOpt,
    out: Annotated[
        Path, typer.Option(metavar="DIR", help="Output folder: OUT/<id>/ per job, and OUT/batch.json.")
    ],
    workers: WorkersOpt = None,
    ray: RayOpt = None,
    resume: ResumeOpt = False,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Run the good rows even when some fail the checks.")
    ] = False,
    json_summary: JsonSummaryOpt = False,
) -> None:
    """Run every job of JOBS; each writes OUT/<id>/ exactly what `vggts propagate` would.

    Example: vggts batch jobs.csv --out out/ --ray auto
    """
    from vggts_cli.batch.local import LocalPool
    from vggts_cli.batch.manifest import load_manifest
    from vggts_cli.batch.runner import check_out, run_batch
    from vggts_cli.errors import UsageError, VggtsError

    if ray is not None:
        from vggts_cli.batch.ray_backend import RayCluster

        backend = RayCluster(ray, workers)
    else:
        backend = LocalPool(workers)
    check_out(out, resume)
    good, bad = load_manifest(jobs, out, resume)
    for row in bad:
        say(f"{'skipping' if skip_bad else 'error:'} {row}")
    if bad and not skip_bad:
        raise UsageError(
            f"{len(bad)} of {len(good) + len(bad)} jobs failed the checks; nothing ran "
            "(fix them, or pass --skip-bad to run the others)"
        )
    with _batch_bar() as on_progress:
        summary = run_batch(good, bad, out, jobs, backend, resume, on_progress)
    failed = [j for j in summary["jobs"] if j["status"] == "failed"]
    for j in failed:
        say(f"job {j['id']} ({j['where']}) failed: {j['error']}")
    if json_summary:
        print(json.dumps(summary, indent=2))
    else:
        counts = ", ".join(f"{n} {status}" for status, n in summary["counts"].items())
        report(
            f"{counts}; {summary['frames']} frames in {summary['seconds']:.1f} s "
            f"({summary['jobs_per_hour']:.0f} jobs/h) -> {out / 'batch.json'}"
        )
    if failed:
        raise VggtsError(f"{len(failed)} of {len(summary['jobs'])} jobs failed; see {out / 'batch.json'}")


@contextmanager
def _batch_bar() -> Iterator[BatchProgressFn]:
    """One bar for the whole batch (jobs done, frames done, frames/s), as the callback `run_batch` takes."""
    columns = (
        TextColumn("batch jobs {task.fields[jobs]}"),
        BarColumn(),
        TextColumn("frames {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("{task.fields[fps]:.1f} frames/s"),
        TimeElapsedColumn(),
    )
    with progress_bar(*columns) as bar:
        task = bar.add_task("batch", total=None, jobs="0/0", fps=0.0)
        start = time.perf_counter()

        def on_progress(finished: int, todo: int, frames: float, total: int) -> None:
            fps = frames / max(time.perf_counter() - start, 1e-6)
            bar.update(task, total=total, completed=frames, jobs=f"{finished}/{todo}", fps=fps)

        yield on_progress
