"""What each more object costs: one job over the example's two-camera scene with 1, 2, 4 and 8 objects.

The seed mask (the rendered object on ego frame 0) is cut into N vertical strips, one object each (a label
map), and `vggts propagate` (`--write rle`) runs with the shipped learned engine on the CPU. Printed per N:
seconds per frame (both cameras' frames counted) and the ratio to one object, with focus crops on (the
default: all objects look at a frame through one crop around them, a lost object's whole-frame search
excepted) and off (whole frames); the share of object-frames found (a non-empty mask): a strip the
model cannot hold is lost, and with focus a lost object looks at the whole frame on every frame, a
backbone pass of its own; and the learned engine's work, which no other load on the machine changes:
backbone windows (batches of the engine's window of frames, 8 on the CPU) and head pairs. Either way
the backbone pass of a frame seen through one crop is shared; the head and the tracker run per object.
The tuning to the job's masks (`--adapt`) is off by default here: it draws a fixed number of pairs from
all objects' masks, so it costs a job the same whatever the number of objects (`vggts bench --adapt`
times it). Timings are wall-clock, the fastest of `--repeat` runs, on a quiet machine.

    python benchmarks/objects.py                       # 1 s of the easy tier at full size
    python benchmarks/objects.py --seconds 0.5 --objects 1,4 --engine classic
    python benchmarks/objects.py --model runs/lite/model.safetensors   # another model file
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vggts_cli.engines.learned.engine import LearnedEngine  # noqa: E402
from vggts_cli.engines.registry import make_engine  # noqa: E402
from vggts_cli.jobs import PropagateJob, check_job  # noqa: E402
from vggts_cli.masks import rle  # noqa: E402
from vggts_cli.pipeline.run import run  # noqa: E402
from vggts_cli.synth.tiers import tier_videos  # noqa: E402


def strips(mask: np.ndarray, count: int) -> np.ndarray:
    """(H, W) bool -> (H, W) uint8 label map: the mask cut into `count` vertical strips of its box, ids
    1..count."""
    xs = np.nonzero(mask.any(axis=0))[0]
    edges = np.linspace(xs[0], xs[-1] + 1, count + 1).round().astype(int)
    labels = np.zeros(mask.shape, np.uint8)
    for n in range(count):
        band = np.zeros_like(mask)
        band[:, edges[n] : edges[n + 1]] = True
        labels[mask & band] = n + 1
    return labels


def found(out: Path) -> float:
    """The share of (frame, object) records of a job's masks.json files with a non-empty mask."""
    records = [r for f in out.glob("*/masks.json") for r in json.loads(f.read_text())["frames"]]
    return sum(bool(rle.decode(r["segmentation"]).any()) for r in records) / len(records)


@dataclass(frozen=True)
class Cell:
    """One job: wall-clock seconds per frame, the share of object-frames found, and the learned engine's
    work (machine-independent): backbone windows and head pairs (None for another engine)."""

    seconds: float
    found: float
    windows: int | None
    pairs: int | None

    def text(self, one: Cell) -> str:
        work = "" if self.windows is None else f", {self.windows} windows / {self.pairs} pairs"
        return f"{self.seconds:.3f} ({self.seconds / one.seconds:.2f}x), {self.found:.0%}{work}"


def job_cell(
    rec, count: int, engine_name: str, model: str | None, adapt: int | None, focus: bool, folder: Path
) -> Cell:
    """One job with `count` objects, timed and counted."""
    folder.mkdir(parents=True, exist_ok=True)
    seed = folder / f"seed{count}.png"
    cv2.imwrite(str(seed), strips(rec.truth(0, 0), count))
    job = PropagateJob(
        src=rec.videos[0],
        dsts=rec.videos[1:],
        masks=(seed,),
        out=folder / f"out-{count}-{focus}",
        write=("rle",),
        engine=engine_name,
    )
    prepared = check_job(job)
    engine = make_engine(engine_name, model, "cpu", adapt=adapt)
    windows, pairs = [], []
    learned = isinstance(engine, LearnedEngine)
    if learned:  # (with --adapt, the tuning's passes count too)
        engine.focus = focus
        engine.model.aggregator.register_forward_hook(lambda *_: windows.append(1))
        engine.model.head.register_forward_hook(lambda _, args, out: pairs.append(len(args[0])))
    start = time.perf_counter()
    run(prepared, engine)
    seconds = (time.perf_counter() - start) / sum(c.info.num_frames for c in prepared.cameras)
    return Cell(seconds, found(job.out), len(windows) if learned else None, sum(pairs) if learned else None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--objects", default="1,2,4,8")
    parser.add_argument("--engine", default="vggts")
    parser.add_argument("--model", help="learned engine: a model file [default: the shipped one]")
    parser.add_argument("--adapt", type=int, default=0, help="tuning steps of the learned engine")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell, the fastest one counts")
    args = parser.parse_args()
    adapt = args.adapt if args.engine == "vggts" else None
    model = args.model if args.engine == "vggts" else None
    counts = [int(n) for n in args.objects.split(",")]
    with tempfile.TemporaryDirectory(prefix="vggts-objects-") as tmp:
        folder = Path(tmp)
        rec = tier_videos(folder / "rec", "easy", args.seconds, args.scale)
        tuned = f", --adapt {adapt}" if adapt is not None else ""
        tuned += f", --model {model}" if model else ""
        print(f"{args.engine}{tuned}, easy tier, {args.seconds:g} s at scale {args.scale:g}")
        print("objects | focus on: s/frame (x one), found, work | focus off: the same")
        base: dict[bool, Cell] = {}
        for count in counts:
            cells = []
            for focus in (True, False):
                runs = [
                    job_cell(rec, count, args.engine, model, adapt, focus, folder / f"run{n}")
                    for n in range(args.repeat)
                ]
                cell = min(runs, key=lambda c: c.seconds)  # deterministic: every run does the same work
                cells.append(cell.text(base.setdefault(focus, cell)))
            print(f"{count:7d} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
