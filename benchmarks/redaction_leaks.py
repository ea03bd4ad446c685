"""Redaction leaks on rendered two-camera videos with exact masks: tier × camera × engine × settings.

For each tier (vggts_cli/synth/tiers.py: scene.py's example rig with harder motion, wobble and scale) the
recording is rendered and encoded, each engine segments it (`vggts propagate --write rle`), and the masks
are redacted by the same cover code `redacted.mp4` uses (sinks/cover.py). A frame leaks when more than 5 % of
the object's visible pixels stay uncovered. Printed per row: leaked frames / visible frames, the frames
with any object pixel uncovered, the most object pixels left in one frame, and the over-coverage (covered
area / true area, over the visible frames).

    python benchmarks/redaction_leaks.py                          # every tier, both engines, 4 s full size
    python benchmarks/redaction_leaks.py --tier easy --engine classic --seconds 1 --scale 0.5

The easy tier at the default size and length is the bundled example's scene and rig (examples/ego.mp4 and
exo.mp4 are that recording, with an audio track). Settings compared: `default` (SinkOptions' defaults,
what `--write redact` does) and `before` (no hold-over, no size or motion margin: neighbours and the
frame-size margin only, the redaction before issue 14).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vggts_cli.eval.redaction import LeakStats, measure  # noqa: E402
from vggts_cli.jobs import PropagateJob, check_job  # noqa: E402
from vggts_cli.sinks.base import SinkOptions  # noqa: E402
from vggts_cli.synth.tiers import SCENE_TIERS, TierVideos, tier_videos  # noqa: E402

SETTINGS = {
    "default": SinkOptions(redact_mode="fill"),
    "before": SinkOptions(redact_mode="fill", redact_hold=0, redact_grow=0.0, redact_motion=0.0),
}


def segment(rec: TierVideos, engine: str, out: Path) -> list[Path]:
    """Run `engine` over the recording into `out` (masks.json only); the masks.json path per camera."""
    from vggts_cli.engines.registry import make_engine
    from vggts_cli.pipeline.run import run

    mask = rec.seed_png(out.parent / f"{out.name}-seed.png")
    job = PropagateJob(
        src=rec.videos[0],
        dsts=rec.videos[1:],
        masks=(mask,),
        out=out,
        write=("rle",),
        engine=engine,
        overwrite=True,
    )
    prepared = check_job(job)
    run(prepared, make_engine(engine, None, "auto"))
    return [out / cam.name / "masks.json" for cam in prepared.cameras]


def rows(tiers: list[str], engines: list[str], seconds: float, scale: float, work: Path) -> list[dict]:
    """One row per tier, engine, camera and setting."""
    table = []
    for tier in tiers:
        rec = tier_videos(work / tier, tier, seconds=seconds, scale=scale)
        for engine in engines:
            paths = segment(rec, engine, work / tier / f"out-{engine}")
            for cam, path in enumerate(paths):
                for name, options in SETTINGS.items():
                    stats: LeakStats = measure(path, lambda i, r=rec, c=cam: r.truth(c, i), options)
                    table.append(
                        {"tier": tier, "camera": rec.cameras[cam].name, "engine": engine, "settings": name}
                        | {"stats": stats}
                    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", action="append", choices=list(SCENE_TIERS), help="repeatable; default all")
    parser.add_argument("--engine", action="append", choices=["classic", "vggts"], help="default both")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--scale", type=float, default=1.0, help="frame sizes relative to the example's")
    parser.add_argument("--work", type=Path, default=Path("/tmp/vggts-redaction-leaks"))
    args = parser.parse_args()
    table = rows(
        args.tier or list(SCENE_TIERS),
        args.engine or ["classic", "vggts"],
        args.seconds,
        args.scale,
        args.work,
    )
    line = "{:7} {:6} {:8} {:8} {:>15} {:>9} {:>9} {:>6}"
    print(line.format("tier", "camera", "engine", "settings", "leaked/visible", "any px", "worst px", "over"))
    for row in table:
        s = row["stats"]
        leaked = f"{s.leaked}/{s.visible}"
        cells = (row["tier"], row["camera"], row["engine"], row["settings"], leaked, s.touched, s.worst_px)
        print(line.format(*cells, f"{s.over_coverage:.2f}"))


if __name__ == "__main__":
    main()
