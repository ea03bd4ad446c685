"""Peak RSS of `vggts propagate` for a short and a 10× longer recording: memory must not grow with length.

    python benchmarks/propagate_memory.py [--frames 300 3000] [--scale 0.5]

Renders two-camera recordings (ego 30 fps + exo 25 fps, the example rig) of the given ego frame counts,
runs the classic engine with every output kind, and prints each run's peak RSS (the child's ru_maxrss) and
frames/s.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from recordings import make_recording  # noqa: E402


def peak_rss_run(args: list[str]) -> tuple[float, float, dict]:
    """Run `vggts` in a fresh child; returns (peak RSS MiB, seconds, --json summary)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "vggts_cli", *args], capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise RuntimeError("ru_maxrss did not move: run each length in its own process (--frames one value)")
    return peak / 1024, seconds, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[300, 3000], help="ego frames per run")
    parser.add_argument("--scale", type=float, default=0.5, help="frame size relative to 640x480 / 960x540")
    args = parser.parse_args()
    if len(args.frames) > 1:  # ru_maxrss of children is a running maximum: one child process per length
        for n in args.frames:
            subprocess.run(
                [sys.executable, __file__, "--frames", str(n), "--scale", str(args.scale)], check=True
            )
        return
    frames = args.frames[0]
    with tempfile.TemporaryDirectory() as tmp:
        rec = make_recording(Path(tmp) / "rec", seconds=frames / 30, scale=args.scale, audio=True)
        mask = rec.seed_png(Path(tmp) / "mask.png")
        out = str(Path(tmp) / "out")
        cmd = rec.propagate_args(mask, "--out", out, "--write", "rle,overlay,redact,png,matte", "--json")
        rss, seconds, summary = peak_rss_run(cmd)
    total = sum(c["frames"] for c in summary["cameras"])
    print(
        f"{frames} ego + {total - frames} exo frames: peak RSS {rss:.0f} MiB, {seconds:.1f} s, "
        f"{total / seconds:.1f} frames/s end to end"
    )


if __name__ == "__main__":
    main()
