"""`vggts bench`: every stage runs for real on small inputs and reports consistent figures (no timings
are asserted, only that they are measured and add up)."""

from __future__ import annotations

import json

import pytest
from media import make_video
from rich.console import Console

from vggts_cli.bench import STAGES, bench
from vggts_cli.cli.app import app
from vggts_cli.cli.bench import parse_size, render
from vggts_cli.errors import UsageError

# The smallest segmenting model: the whole benchmark runs in seconds on two CPU cores.
MODEL = "vggt-s-lite"


@pytest.fixture(scope="module")
def full():
    """Every stage, synthetic 64x48 videos of 2 frames, both end-to-end schedules; the steps it announced
    (for the progress display) under "steps"."""
    steps: list[str] = []
    result = bench(
        MODEL,
        "cpu",
        size=112,
        window=2,
        dtype="fp32",
        iters=1,
        frames=2,
        input_size=(64, 48),
        adapt=2,
        on_step=steps.append,
    )
    return result | {"steps": steps}


def test_each_step_is_announced_as_it_starts(full):
    model_stages = ["backbone", "tracker", "head"]
    e2e = ["end-to-end (windowed)", "end-to-end (pair)", "tuning (--adapt 2)"]
    assert full["steps"] == ["random model", *model_stages, "input clips", "decode", "encode", *e2e]


def test_every_stage_reported_in_pipeline_order(full):
    assert full["stages"] == list(STAGES)
    for stage in ("backbone", "tracker", "head"):
        s = full[stage]
        assert s["per_s"] > 0 and s["flops_per_item"] > 0 and s["mfu"] is None  # fp32 on the CPU
    assert full["backbone"]["per_s"] == pytest.approx(2 / full["backbone"]["seconds_per_call"])
    assert full["parameters"]["backbone"] > 0 and full["parameters"]["head"] > 0


def test_synthetic_inputs_and_video_stages(full):
    assert full["input"]["synthetic"] is True
    videos = full["input"]["videos"]
    assert [(v["width"], v["height"], v["frames"]) for v in videos] == [(64, 48, 2), (64, 48, 2)]
    for stage in ("decode", "encode"):
        s = full[stage]
        assert s["frames"] == 4 and len(s["videos"]) == 2
        assert s["seconds"] == pytest.approx(sum(v["seconds"] for v in s["videos"]))
        assert s["per_s"] == pytest.approx(s["frames"] / s["seconds"])


def test_end_to_end_per_schedule_and_ratio(full):
    e2e = full["end_to_end"]
    assert e2e["pairs"] == 2 and e2e["cameras"] == 2 and e2e["write"] == "overlay"
    runs = e2e["schedules"]
    assert list(runs) == ["windowed", "pair"]
    for r in runs.values():
        assert r["pairs_per_s"] == pytest.approx(2 / r["seconds"])
        assert r["peak_memory"]["kind"] == "process peak RSS" and r["peak_memory"]["bytes"] > 0
    assert e2e["windowed_over_pair"] == pytest.approx(
        runs["windowed"]["pairs_per_s"] / runs["pair"]["pairs_per_s"]
    )
    assert full["peak_memory"]["bytes"] >= max(r["peak_memory"]["bytes"] for r in runs.values())
    assert e2e["tuning"]["steps"] == 2 and e2e["tuning"]["seconds"] > 0  # once per job, on its own


def test_table_has_a_row_per_stage_and_schedule(full):
    console = Console(record=True, width=200)
    console.print(render(full))
    text = console.export_text()
    for row in (
        "decode",
        "backbone",
        "tracker",
        "head",
        "encode",
        "end-to-end (windowed)",
        "end-to-end (pair)",
    ):
        assert row in text
    assert "windowed/pair" in text and "pairs/s" in text


def test_given_videos_keep_their_size_and_are_cut_to_frames(tmp_path):
    ego = make_video(tmp_path / "ego.mp4", width=96, height=64, frames=10)
    exo = make_video(tmp_path / "exo.mkv", width=80, height=48, frames=6)
    result = bench(MODEL, "cpu", stages=["encode", "decode"], videos=[ego, exo], frames=8)
    assert result["stages"] == ["decode", "encode"]
    assert "parameters" not in result and "backbone" not in result  # no model needed
    assert [(v["width"], v["height"], v["frames"]) for v in result["input"]["videos"]] == [
        (96, 64, 8),
        (80, 48, 6),
    ]
    assert [v["video"] for v in result["decode"]["videos"]] == [str(ego), str(exo)]  # the originals
    assert result["decode"]["frames"] == result["encode"]["frames"] == 14


def test_one_schedule_only(tmp_path):
    ego = make_video(tmp_path / "ego.mp4", width=64, height=48, frames=2)
    exo = make_video(tmp_path / "exo.mp4", width=48, height=64, frames=2)
    result = bench(MODEL, "cpu", stages=["end-to-end"], videos=[ego, exo], frames=2, schedules=["pair"])
    assert list(result["end_to_end"]["schedules"]) == ["pair"]
    assert result["end_to_end"]["windowed_over_pair"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stages": ["decode", "transcode"]}, "--stages"),
        ({"stages": []}, "--stages"),
        ({"stages": ["decode"], "frames": 0}, "--frames"),
        ({"stages": ["decode"], "input_size": (8, 8)}, "--input-size"),
        ({"stages": ["end-to-end"], "schedules": ["batched"]}, "--schedules"),
        ({"stages": ["decode"], "videos": ["a.mp4"], "input_size": (64, 48)}, "--input-size"),
        ({"stages": ["end-to-end"], "videos": ["a.mp4"]}, "two or more --videos"),
        ({"model": "vggt-s-1b", "stages": ["end-to-end"]}, "--device cuda"),
        ({"stages": ["backbone"], "size": 100}, "--size"),
    ],
)
def test_bad_options_are_usage_errors(kwargs, message):
    kwargs = {"model": MODEL, "device": "cpu", **kwargs}
    with pytest.raises(UsageError, match=message):
        bench(**kwargs)


def test_cli_json_and_one_line_errors(cli, tmp_path):
    args = ["bench", "--model", MODEL, "--device", "cpu", "--stages", "encode,decode", "--frames", "2"]
    ok = cli(app, *args, "--input-size", "64x48", "--json")
    assert ok.exit_code == 0, ok.output
    result = json.loads(ok.stdout)
    assert result["stages"] == ["decode", "encode"] and result["encode"]["frames"] == 4
    bad = cli(app, *args, "--input-size", "64by48")
    assert bad.exit_code == 2 and bad.stderr.strip().count("\n") == 0 and "WIDTHxHEIGHT" in bad.stderr


def test_parse_size():
    assert parse_size("1920x1080") == (1920, 1080)
    assert parse_size("640X480") == (640, 480)
    with pytest.raises(UsageError):
        parse_size("1920")
