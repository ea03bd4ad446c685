"""`vggts propagate` end to end on real video files: outputs, timing, sync, seeds, bad input, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from media import ffprobe, ffprobe_streams, needs_ffprobe
from pycocotools import mask as cocomask
from recordings import make_recording

from vggts_cli.engines.base import Engine, Prediction, Reference, View
from vggts_cli.jobs import PropagateJob, check_job
from vggts_cli.masks.ops import iou
from vggts_cli.model.configs import VGGT_S_LITE
from vggts_cli.pipeline.run import run
from vggts_cli.video.reader import probe

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def vggts(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "vggts_cli", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"vggts {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def ffprobe_video(path: Path) -> dict:
    """The first video stream's format, frame rate and decoded frame count, and the file's duration."""
    entries = "stream=codec_name,width,height,pix_fmt,r_frame_rate,nb_read_frames:format=duration"
    data = ffprobe(path, "-count_frames", "-select_streams", "v:0", "-show_entries", entries)
    return {**data["streams"][0], "duration": float(data["format"]["duration"])}


def ffprobe_audio_codecs(path: Path) -> list[str]:
    return [s["codec_name"] for s in ffprobe_streams(path, "codec_name", "a")]


class RecordingEngine(Engine):
    """An instrumented engine: returns the first reference's mask resized, and records every call."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, list[tuple[str, str, int]]]] = []

    def segment(self, target: View, refs: Sequence[Reference]) -> Prediction:
        self.calls.append(
            (target.camera, target.index, [(r.kind, r.view.camera, r.view.index) for r in refs])
        )
        h, w = target.image.shape[:2]
        mask = cv2.resize(refs[0].mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        return Prediction(mask, 0.75)


# --------------------------------------------------------------------------- the example, every output


def propagate_example(out: Path, *options: str) -> subprocess.CompletedProcess:
    """`vggts propagate` on the bundled example (ego → exo, the seed mask on frame 0) into `out`."""
    inputs = (
        "--src",
        EXAMPLES / "ego.mp4",
        "--dst",
        EXAMPLES / "exo.mp4",
        "--mask",
        EXAMPLES / "ego_mask.png",
    )
    return vggts("propagate", *map(str, inputs), "--out", str(out), *options)


@pytest.fixture(scope="module")
def example_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("example") / "out"
    proc = propagate_example(out, "--engine", "classic", "--write", "rle,overlay,redact,png,matte", "--json")
    return out, json.loads(proc.stdout)


def test_json_summary(example_run):
    out, summary = example_run
    cams = {c["camera"]: c for c in summary["cameras"]}
    assert set(cams) == {"ego", "exo"}
    assert cams["ego"]["frames"] == 120 and cams["exo"]["frames"] == 100
    for c in cams.values():
        assert 0.0 <= c["mean_score"] <= 1.0 and c["frames_per_second"] > 0


@needs_ffprobe
@pytest.mark.parametrize("camera", ["ego", "exo"])
@pytest.mark.parametrize("output", ["overlay.mp4", "redacted.mp4", "matte.mov"])
def test_videos_keep_count_rate_size_duration(example_run, camera, output):
    out, _ = example_run
    source, result = ffprobe_video(EXAMPLES / f"{camera}.mp4"), ffprobe_video(out / camera / output)
    assert result["nb_read_frames"] == source["nb_read_frames"]
    assert result["r_frame_rate"] == source["r_frame_rate"]
    assert (result["width"], result["height"]) == (source["width"], source["height"])
    frame = 1 / float(Fraction(source["r_frame_rate"]))
    assert abs(result["duration"] - source["duration"]) <= frame + 1e-3
    if output == "matte.mov":
        assert result["codec_name"] == "prores" and "a" in result["pix_fmt"]


@needs_ffprobe
def test_redacted_keeps_audio(example_run):
    out, _ = example_run
    assert ffprobe_audio_codecs(out / "ego" / "redacted.mp4") == ffprobe_audio_codecs(EXAMPLES / "ego.mp4")
    assert ffprobe_audio_codecs(EXAMPLES / "ego.mp4") == ["aac"]


def example_ious(out: Path, name: str) -> list[float]:
    """IoU of every frame of camera `name` of a run on the bundled example against the renderer's masks."""
    from vggts_cli.synth.scene import Scene, ego_exo_cameras

    scene = Scene.generate(0)
    camera = dict(zip(("ego", "exo"), ego_exo_cameras(scene.duration), strict=True))[name]
    doc = json.loads((out / name / "masks.json").read_text())
    return [
        iou(cocomask.decode(rec["segmentation"]).astype(bool), scene.render(camera, rec["frame"])[1])
        for rec in doc["frames"]
    ]


def test_masks_json_and_png_sequence(example_run):
    out, _ = example_run
    for name, info in (("ego", probe(EXAMPLES / "ego.mp4")), ("exo", probe(EXAMPLES / "exo.mp4"))):
        doc = json.loads((out / name / "masks.json").read_text())
        assert (doc["width"], doc["height"], doc["num_frames"]) == (info.width, info.height, info.num_frames)
        assert Fraction(doc["fps"]) == info.fps and "/" in doc["fps"]
        assert [f["frame"] for f in doc["frames"]] == list(range(info.num_frames))
        np.testing.assert_allclose([f["pts"] for f in doc["frames"]], info.times, atol=1e-6)
        for rec in doc["frames"]:
            mask = cocomask.decode(rec["segmentation"])
            assert mask.shape == (info.height, info.width) and 0.0 <= rec["score"] <= 1.0
        # The planar example is the classic engine's home ground; both cameras must be tracked well.
        assert np.mean(example_ious(out, name)) > 0.6, name
        pngs = sorted((out / name / "masks").glob("*.png"))
        assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(info.num_frames)]
        first = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
        assert first.ndim == 2 and set(np.unique(first)) <= {0, 255}
        assert np.array_equal(first > 0, cocomask.decode(doc["frames"][0]["segmentation"]) > 0)


def test_the_default_engine_tracks_the_example(tmp_path):
    """No --engine: the classic engine (until the learned one wins on real validation footage)."""
    out = tmp_path / "out"
    propagate_example(out, "--write", "rle")
    for name in ("ego", "exo"):
        assert np.mean(example_ious(out, name)) > 0.7, name  # measured: 0.97 and 0.94


# --------------------------------------------------------------------------- time alignment and seeds


def test_cameras_pair_by_world_time_with_offset(tmp_path):
    """ego at 30 fps, exo at 25 fps whose clock starts at 0 although it started 0.4 s late."""
    rec = make_recording(tmp_path / "rec", seconds=1.0, exo_start=0.4, exo_file_start=0.0)
    engine = RecordingEngine()
    job = PropagateJob(
        src=rec.videos[0],
        dsts=(rec.videos[1],),
        masks=(rec.seed_png(tmp_path / "m.png"),),
        out=tmp_path / "out",
        offsets=(("exo", 0.4),),
        write=("rle",),
    )
    run(check_job(job), engine)
    ego_t = np.arange(30) / 30
    for cam, index, refs in engine.calls:
        if cam != "exo":
            continue
        cross = [r for r in refs if r[0] == "cross"]
        assert len(cross) == 1 and cross[0][1] == "ego"
        world = index / 25 + 0.4
        assert cross[0][2] == int(np.argmin(np.abs(ego_t - world))), (index, cross)


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_every_frame_once_from_any_seed(tmp_path, where):
    rec = make_recording(tmp_path / "rec", seconds=1.0)
    seed = {"first": 0, "middle": 14, "last": 29}[where]
    engine = RecordingEngine()
    job = PropagateJob(
        src=rec.videos[0],
        dsts=(rec.videos[1],),
        masks=(rec.seed_png(tmp_path / "m.png", seed),),
        out=tmp_path / "out",
        mask_frame=seed,
        write=("rle",),
    )
    summaries = run(check_job(job), engine)
    seen = {(c, i) for c, i, _ in engine.calls}
    assert len(seen) == len(engine.calls)  # nothing segmented twice
    assert seen == {("ego", i) for i in range(30) if i != seed} | {("exo", i) for i in range(25)}
    for cam, index, refs in engine.calls:
        kinds = [r[0] for r in refs]
        assert ("seed", "ego", seed) in refs  # the seed stays a long-term reference
        if cam == "ego":
            temporal = [r for r in refs if r[0] == "temporal"][0]
            assert abs(temporal[2] - index) == 1 and (temporal[2] - seed) * (index - seed) >= 0
        else:
            assert "cross" in kinds
    doc = json.loads((tmp_path / "out" / "ego" / "masks.json").read_text())
    seed_rec = doc["frames"][seed]
    assert seed_rec["score"] == 1.0
    assert np.array_equal(cocomask.decode(seed_rec["segmentation"]) > 0, rec.truth(0, seed))
    assert [s.frames for s in summaries] == [30, 25]


def test_middle_seed_classic_quality(tmp_path):
    rec = make_recording(tmp_path / "rec", seconds=1.0)
    out = tmp_path / "out"
    vggts(*rec.propagate_args(rec.seed_png(tmp_path / "m.png", 15), "--mask-frame", "15", "--out", str(out)))
    for cam, name in enumerate(("ego", "exo")):
        doc = json.loads((out / name / "masks.json").read_text())
        ious = [
            iou(cocomask.decode(f["segmentation"]) > 0, rec.truth(cam, f["frame"])) for f in doc["frames"]
        ]
        assert min(ious[:3]) > 0.3 and np.mean(ious) > 0.6, (name, ious)


# --------------------------------------------------------------------------- bad input


def bad_inputs(tmp: Path, ego: Path, exo: Path, mask: Path, out: Path) -> dict[str, tuple[list[str], int]]:
    """Case name: (propagate's arguments, expected exit code)."""
    text = tmp / "notes.mp4"
    text.write_text("this is not a video\n")
    truncated = tmp / "truncated.mp4"
    truncated.write_bytes(ego.read_bytes()[: ego.stat().st_size // 2])
    audio_only = tmp / "audio.m4a"
    subprocess_audio(audio_only)
    wrong_size = tmp / "wrong.png"
    cv2.imwrite(str(wrong_size), np.full((10, 10), 255, np.uint8))
    empty = tmp / "empty.png"
    cv2.imwrite(str(empty), np.zeros(cv2.imread(str(mask)).shape[:2], np.uint8))

    def args(*extra: str, src: Path = ego, dst: Path = exo, seed: Path = mask, to: Path = out) -> list[str]:
        return ["--src", str(src), "--dst", str(dst), "--mask", str(seed), *extra, "--out", str(to)]

    return {
        "unreadable": (args(src=text), 1),
        "missing": (args(src=tmp / "nope.mp4"), 1),
        "truncated": (args(dst=truncated), 1),
        "no-video-stream": (args(dst=audio_only), 1),
        "mask-size": (args(seed=wrong_size), 1),
        "mask-empty": (args(seed=empty), 1),
        "mask-frame": (args("--mask-frame", "999"), 2),
        "out-holds-input": (args("--write", "rle", to=ego.parent), 2),
        "bad-offset": (args("--offset", "exo:0.4"), 2),
        "unknown-camera": (args("--offset", "side=0.4"), 2),
        "bad-write": (args("--write", "rle,gif"), 2),
    }


def subprocess_audio(path: Path) -> None:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=48000, layout="mono")
        for i in range(10):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts, f.time_base = 48000, i * 1024, Fraction(1, 48000)
            c.mux(s.encode(f))
        c.mux(s.encode())


@pytest.mark.parametrize(
    "case",
    [
        "unreadable",
        "missing",
        "truncated",
        "no-video-stream",
        "mask-size",
        "mask-empty",
        "mask-frame",
        "out-holds-input",
        "bad-offset",
        "unknown-camera",
        "bad-write",
    ],
)
def test_bad_input_one_line_no_outputs(tmp_path, small, case):
    ego, exo, mask = small
    out = tmp_path / "out"
    args, code = bad_inputs(tmp_path, ego, exo, mask, out)[case]
    proc = vggts("propagate", *args, check=False)
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vggts: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert not any(p.name in {"masks.json", "overlay.mp4"} for p in ego.parent.rglob("*"))


@pytest.mark.parametrize("engine", ["classic", "vggts"])
def test_a_seed_mask_of_the_whole_frame_is_refused(tmp_path, small, engine):
    # Seeded with the whole frame, the learned engine finds some small other thing from the next frame on;
    # so a mask must leave some background, as it must mark some object: refused before any work.
    ego, exo, mask = small
    full = tmp_path / "full.png"
    cv2.imwrite(str(full), np.full(cv2.imread(str(mask)).shape[:2], 255, np.uint8))
    out = tmp_path / "out"
    args = ["--src", str(ego), "--dst", str(exo), "--mask", str(full), "--engine", engine, "--out", str(out)]
    proc = vggts("propagate", *args, check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"vggts: error: seed mask {full} covers the whole frame: it must leave some background (zero pixels)"
    ]
    assert not out.exists()


def test_refuses_to_overwrite_an_earlier_job(tmp_path, small):
    ego, exo, mask = small
    out = tmp_path / "out"
    args = ["propagate", "--src", str(ego), "--dst", str(exo), "--mask", str(mask), "--out", str(out)]
    vggts(*args)
    before = (out / "ego" / "masks.json").read_bytes()
    proc = vggts(*args, check=False)
    assert proc.returncode == 2 and "--resume" in proc.stderr
    assert (out / "ego" / "masks.json").read_bytes() == before
    vggts(*args, "--overwrite")


# --------------------------------------------------------------------------- resume after SIGKILL


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    rec = make_recording(tmp_path / "rec", seconds=2.0, scale=0.5, audio=True)
    mask = rec.seed_png(tmp_path / "m.png", 20)
    common = rec.propagate_args(mask, "--mask-frame", "20", "--write", "rle,overlay,redact,png")
    vggts(*common, "--out", str(tmp_path / "clean"))

    killed = tmp_path / "killed"
    journal = killed / ".vggts" / "journal.jsonl"
    # The job kills itself once its journal holds 41 frames: a known point, no race with the job's speed.
    script = Path(__file__).with_name("killed_job.py")
    proc = subprocess.run(
        [sys.executable, str(script), "KILL", "41", *common, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert proc.returncode == -signal.SIGKILL, "the job ended before it could be killed"
    assert sum(line.count('"cam"') for line in journal.read_text().splitlines()) >= 41
    assert not (killed / "ego" / "masks.json").exists()

    vggts(*common, "--out", str(killed), "--resume")
    for cam in ("ego", "exo"):
        assert (killed / cam / "masks.json").read_bytes() == (
            tmp_path / "clean" / cam / "masks.json"
        ).read_bytes()
        for name in ("overlay.mp4", "redacted.mp4"):
            assert (killed / cam / name).read_bytes() == (tmp_path / "clean" / cam / name).read_bytes()
        assert not list((killed / cam).glob("*.part*"))


# --------------------------------------------------------------------------- the learned engine


def test_learned_engine_end_to_end(tmp_path):
    """A small random-weight VGGT-S checkpoint runs the same job through `--engine vggts`."""
    from models import make_tiny_checkpoint

    rec = make_recording(tmp_path / "rec", seconds=0.3, scale=0.25)
    checkpoint = make_tiny_checkpoint(tmp_path / "lite.safetensors", cfg=VGGT_S_LITE)
    out = tmp_path / "out"
    mask = rec.seed_png(tmp_path / "m.png")
    proc = vggts(
        *rec.propagate_args(
            mask,
            "--out",
            str(out),
            "--model",
            str(checkpoint),
            "--device",
            "cpu",
            "--json",
            engine="vggts",
        )
    )
    cams = {c["camera"]: c for c in json.loads(proc.stdout)["cameras"]}
    for cam, info in (("ego", probe(rec.videos[0])), ("exo", probe(rec.videos[1]))):
        assert cams[cam]["frames"] == info.num_frames
        doc = json.loads((out / cam / "masks.json").read_text())
        assert len(doc["frames"]) == info.num_frames
        for rec_ in doc["frames"]:
            assert cocomask.decode(rec_["segmentation"]).shape == (info.height, info.width)
            assert 0.0 <= rec_["score"] <= 1.0
    missing = vggts(
        *rec.propagate_args(
            mask,
            "--out",
            str(tmp_path / "o2"),
            "--model",
            str(tmp_path / "none.safetensors"),
            engine="vggts",
        ),
        check=False,
    )
    assert missing.returncode == 1 and "no such file" in missing.stderr
    assert missing.stderr.count("\n") == 1 and not (tmp_path / "o2").exists()


def test_closed_stdout_pipe_ends_quietly():
    """`vggts … | head`: the reader goes away before vggts writes; no traceback, no 'Exception ignored'."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # closed before the child writes anything
    proc = subprocess.run(
        [sys.executable, "-m", "vggts_cli", "weights", "list"],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write_end)
    assert proc.returncode == 1
    assert proc.stderr == ""
