"""Jobs per hour of `vggts batch` with the classic engine: the local pool and a local Ray cluster, same run.

    .venv/bin/python benchmarks/batch_throughput.py [--jobs 8] [--seconds 1.0] [--scale 0.5] [--workers 2]

Makes one short recording (tests/recordings.py), runs the same manifest of N jobs (rle + overlay each) with
`vggts batch` on the local pool, then on a Ray cluster started here on 127.0.0.1 with --workers CPUs, and
prints per backend: wall time, jobs/hour, mean seconds of a job inside its worker, and the per-job overhead:
(workers x wall - sum of in-worker job seconds) / jobs, i.e. worker time not spent running jobs (process or
actor start-up, imports, scheduling, progress and record keeping, idle tail), amortised over the jobs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from recordings import make_recording  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def batch(manifest: Path, out: Path, workers: int, *extra: str) -> tuple[float, dict]:
    """Run `vggts batch`; (wall seconds of the whole command, its --json summary)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "vggts_cli", "batch", str(manifest), "--out", str(out)]
        + ["--workers", str(workers), "--json", *extra],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"vggts batch failed: {proc.stderr}")
    return wall, json.loads(proc.stdout)


def report(name: str, wall: float, summary: dict, workers: int) -> dict:
    jobs = summary["jobs"]
    busy = sum(j["seconds"] for j in jobs)
    row = {
        "backend": summary["backend"],
        "jobs": len(jobs),
        "wall_s": round(wall, 2),
        "jobs_per_hour": round(len(jobs) * 3600 / wall),
        "job_s": round(busy / len(jobs), 3),
        "overhead_per_job_s": round((workers * wall - busy) / len(jobs), 3),
    }
    print(
        f"{name:>6}: {row['jobs']} jobs in {row['wall_s']:.1f} s -> {row['jobs_per_hour']} jobs/h; "
        f"a job {row['job_s']:.2f} s in its worker, overhead {row['overhead_per_job_s']:.2f} s/job "
        f"({row['backend']})"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of the recording")
    parser.add_argument("--scale", type=float, default=0.5, help="size relative to the example rig")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="vggts-bench-"))
    try:
        rec = make_recording(root / "rec", seconds=args.seconds, scale=args.scale)
        rec.seed_png(root / "rec" / "mask.png")
        rows = [f"job{i},rec/ego.mp4,rec/exo.mp4,rec/mask.png,rle;overlay" for i in range(args.jobs)]
        manifest = root / "jobs.csv"
        manifest.write_text("id,src,dst,mask,write\n" + "\n".join(rows) + "\n")
        frames = sum(c.num_frames for c in rec.cameras)
        print(f"{args.jobs} jobs of {frames} frames (ego + exo, {args.seconds:g} s), classic engine")

        results = {"local": report("local", *batch(manifest, root / "local", args.workers), args.workers)}

        port, log = free_port(), root / "ray-head.log"
        with log.open("w") as f:
            head = subprocess.Popen(
                [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={port}"]
                + ["--node-ip-address=127.0.0.1", f"--num-cpus={args.workers}", "--include-dashboard=false"]
                + ["--disable-usage-stats", f"--ray-client-server-port={free_port()}"],
                stdout=f,
                stderr=subprocess.STDOUT,
            )
        try:
            while "Ray runtime started" not in log.read_text():
                if head.poll() is not None:
                    raise SystemExit(f"ray start failed: {log.read_text()}")
                time.sleep(0.2)
            ray_run = batch(manifest, root / "ray", args.workers, "--ray", f"127.0.0.1:{port}")
            results["ray"] = report("ray", *ray_run, args.workers)
        finally:
            head.terminate()  # stops this cluster (and only it): the head runs in the foreground (--block)
            head.wait(timeout=60)
        print(json.dumps(results))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
