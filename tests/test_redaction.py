"""Redaction on rendered videos with exact masks: no leaks with the default settings; the review sheet.

Leaks: every tier of vggts_cli/synth/tiers.py (small frames, half a second), both cameras, the default
engine; a frame leaks when more than 5 % of the object's visible pixels stay uncovered (eval/redaction.py).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from recordings import make_recording

from vggts_cli.batch.manifest import load_manifest
from vggts_cli.cli.app import app
from vggts_cli.eval.redaction import LEAK_FRACTION, LeakStats, measure
from vggts_cli.jobs import PropagateJob, check_job
from vggts_cli.sinks.base import SinkOptions
from vggts_cli.sinks.outputs import build_sinks
from vggts_cli.sinks.review import (
    BACKGROUND,
    COLUMNS,
    GAP,
    LABEL_HEIGHT,
    PLOT_HEIGHT,
    TITLE_HEIGHT,
    sheet_size,
    thumb_size,
)
from vggts_cli.synth.tiers import SCENE_TIERS, tier_rig, tier_videos
from vggts_cli.video.reader import VideoReader, probe

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.mark.parametrize("tier", list(SCENE_TIERS))
def test_no_leaks_with_the_default_settings(tmp_path, tier) -> None:
    from vggts_cli.engines.registry import default_engine, make_engine
    from vggts_cli.pipeline.run import run

    rec = tier_videos(tmp_path / "rec", tier, seconds=1.0, scale=0.5)
    mask = rec.seed_png(tmp_path / "seed.png")
    job = PropagateJob(
        src=rec.videos[0], dsts=rec.videos[1:], masks=(mask,), out=tmp_path / "out", write=("rle",)
    )
    prepared = check_job(job)
    run(prepared, make_engine(default_engine()))
    for cam, camera in enumerate(prepared.cameras):
        stats = measure(job.out / camera.name / "masks.json", lambda i, c=cam: rec.truth(c, i), SinkOptions())
        assert stats.visible > 0
        assert stats.leaked == 0, f"{tier} {camera.name}: {stats}"
        assert 1.0 < stats.over_coverage < 100


def test_leak_stats_counts_frames_over_five_percent() -> None:
    truth = np.zeros((20, 20), bool)
    truth[:10, :10] = True  # 100 px
    stats = LeakStats()
    cover = truth.copy()
    cover[0, :5] = False  # 5 px uncovered: 5 %, not a leak
    stats.add(truth, cover)
    cover[0, :6] = False  # 6 px: a leak
    stats.add(truth, cover)
    stats.add(np.zeros_like(truth), cover)  # the object is not visible: not counted
    assert (stats.leaked, stats.visible, stats.touched, stats.worst_px) == (1, 2, 2, 6)
    assert stats.over_coverage == pytest.approx((95 + 94) / 200) and LEAK_FRACTION == 0.05


def panels(sheet: np.ndarray, width: int, height: int) -> int:
    """Cells of the contact sheet holding a picture (not the background colour)."""
    count = 0
    rows = (sheet.shape[0] - TITLE_HEIGHT - PLOT_HEIGHT - 2 * GAP) // (height + LABEL_HEIGHT + GAP)
    for n in range(rows * COLUMNS):
        x = GAP + (n % COLUMNS) * (width + GAP)
        y = TITLE_HEIGHT + (n // COLUMNS) * (height + LABEL_HEIGHT + GAP)
        cell = sheet[y : y + height, x : x + width]
        count += bool((cell != BACKGROUND).any(axis=2).mean() > 0.9)
    return count


def test_review_sheet_on_the_example(tmp_path) -> None:
    """review.png of the bundled example's head camera with its exact masks, frames 40-45 lost by the
    engine (empty masks, score 0.1) and frame 90 scoring low: the sheet shows the held-over run, the lowest
    scores and the largest changes, outlined and numbered, with the plot below."""
    info = probe(EXAMPLES / "ego.mp4")
    scene, ego, _ = tier_rig("easy")  # the example's scene and head camera
    (sink,) = build_sinks(["review"], tmp_path, info, SinkOptions())
    with VideoReader(info) as reader:
        for frame in reader.frames():
            lost = 40 <= frame.index <= 45
            mask = scene.render(ego, frame.index)[1] & (not lost)
            score = 0.1 if lost else 0.6 if frame.index == 90 else 0.95
            sink.write(frame, mask, score)
    sink.close()
    sheet = cv2.imread(str(tmp_path / "review.png"))[..., ::-1]
    picked = dict(sink.picked)
    assert picked[40] == ["mask change", "held over"]
    assert "low score" in picked[90] and "mask change" in picked[46]
    assert 5 <= len(picked) <= 12 and 0 not in picked  # no "low score" at the typical score
    assert (sheet.shape[1], sheet.shape[0]) == sheet_size(info, len(picked))
    assert panels(sheet, *thumb_size(info)) == len(picked)
    plot = sheet[-PLOT_HEIGHT - GAP : -GAP, GAP:-GAP].reshape(-1, 3).astype(int)
    assert (np.abs(plot - (60, 220, 90)).sum(axis=1) < 60).sum() > 100  # the score line
    assert (np.abs(plot - (240, 200, 0)).sum(axis=1) < 30).sum() > 100  # the held-over band


def test_propagate_writes_review_and_takes_the_hold_over_options(tmp_path, cli) -> None:
    """`--write review,redact` with the hold-over options: review.png per camera; a bad value is one line
    (exit 2); the manifest of `vggts batch` takes the same settings as columns."""
    rec = make_recording(tmp_path / "rec", seconds=0.3, scale=0.25)
    mask = rec.seed_png(tmp_path / "seed.png")
    options = (
        "--write",
        "review,redact",
        "--hold",
        "5",
        "--min-score",
        "0.4",
        "--spread",
        "1",
        "--grow",
        "0",
    )
    result = cli(app, *rec.propagate_args(mask, "--out", tmp_path / "out", *options))
    assert result.exit_code == 0, result.output
    for camera, video in zip(("ego", "exo"), rec.videos, strict=True):
        sheet = cv2.imread(str(tmp_path / "out" / camera / "review.png"))
        assert sheet is not None and sheet.shape[1] == sheet_size(probe(video), 1)[0]
    bad = cli(app, *rec.propagate_args(mask, "--out", tmp_path / "bad", "--min-score", "nan"))
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--min-score" in bad.stderr
    src, dst = rec.videos
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(f"id,src,dst,mask,hold,min_score,spread,grow\nj1,{src},{dst},{mask},4,0.3,1,0.05\n")
    (job,), bad_rows = load_manifest(manifest, tmp_path / "batch")
    settings = job.job.sink_options
    assert bad_rows == [] and (settings.redact_hold, settings.redact_min_score) == (4, 0.3)
    assert (settings.redact_spread, settings.redact_grow) == (1, 0.05)
