"""AVI inputs end to end: MJPEG, H.264 with and without B-frames, MPEG-4 part 2 with B-frames, PCM and
AAC audio, through every output; and a job that fails or is interrupted leaves no output behind.

AVI stores no presentation timestamps (only each frame's place on the frame clock), drops a frame with
an empty chunk, and carries PCM that an MP4 cannot hold: each of these once broke a job.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from media import ffprobe, ffprobe_streams, make_video, needs_ffprobe, read_index
from pycocotools import mask as cocomask

from vggts_cli.engines.registry import make_engine
from vggts_cli.errors import VggtsError
from vggts_cli.jobs import PropagateJob, check_job
from vggts_cli.pipeline.run import run
from vggts_cli.sinks.redact import RedactSink
from vggts_cli.sinks.rle import RleSink
from vggts_cli.video.reader import VideoReader, probe

FRAMES = 31
SEED = 15  # a middle seed: the job seeks into the AVI and reads it backward as well as forward
WRITE = "rle,overlay,redact,png,matte"
VIDEOS = ("overlay.mp4", "redacted.mp4", "matte.mov")

CASES = {
    # stereo PCM: AVI names no channel layout, which MP4 cannot store ("Invalid argument" on finishing)
    "mjpeg-pcm": {"codec": "mjpeg", "bframes": 0, "audio": "pcm", "channels": 2},
    # AAC's priming makes the AVI muxer drop a video frame (an empty chunk the header counts)
    "mjpeg-aac": {"codec": "mjpeg", "bframes": 0, "audio": "aac"},
    "h264-pcm": {"codec": "libx264", "bframes": 0, "audio": "pcm", "channels": 2},
    # decoded frames' pts are FFmpeg's guesses in decode order, not presentation order
    "h264-bframes-pcm": {"codec": "libx264", "bframes": 2, "audio": "pcm", "channels": 2},
    "h264-bframes-aac": {"codec": "libx264", "bframes": 2, "audio": "aac"},
    "mpeg4-bframes": {"codec": "mpeg4", "bframes": 2, "audio": False},
}


def seed_mask(path: Path, width: int, height: int) -> Path:
    """A box in the lower (non-index) part of the frame."""
    mask = np.zeros((height, width), np.uint8)
    mask[height // 2 : height - 8, width // 4 : width // 2] = 255
    cv2.imwrite(str(path), mask)
    return path


def vggts(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vggts_cli", *args], capture_output=True, text=True)


def ffprobe_times(path: Path) -> list[float]:
    """Presentation times (seconds) of the first video stream's frames, as ffprobe decodes them."""
    frames = ffprobe(path, "-select_streams", "v:0", "-show_entries", "frame=pts_time")["frames"]
    return [float(f["pts_time"]) for f in frames]


def video_stream(path: Path) -> dict:
    (found,) = ffprobe_streams(path, "codec_name,duration,nb_read_frames", "v:0", count=True)
    return found


@pytest.fixture(scope="module", params=list(CASES))
def avi_job(request, tmp_path_factory) -> tuple[str, Path, dict[str, Path], subprocess.CompletedProcess]:
    """Both cameras AVI of one kind (different sizes), every output; (case, out, inputs, process)."""
    case = request.param
    folder = tmp_path_factory.mktemp(case)
    inputs = {
        "ego": make_video(folder / "ego.avi", width=96, height=64, frames=FRAMES, **CASES[case]),
        "exo": make_video(folder / "exo.avi", width=80, height=48, frames=FRAMES, **CASES[case]),
    }
    mask = seed_mask(folder / "mask.png", 96, 64)
    out = folder / "out"
    proc = vggts(
        "propagate",
        *("--src", str(inputs["ego"]), "--dst", str(inputs["exo"]), "--mask", str(mask)),
        *("--mask-frame", str(SEED), "--out", str(out), "--write", WRITE, "--engine", "classic"),
    )
    return case, out, inputs, proc


@needs_ffprobe
def test_avi_job_succeeds_with_every_output(avi_job) -> None:
    case, out, _, proc = avi_job
    assert proc.returncode == 0, proc.stderr
    for camera in ("ego", "exo"):
        names = {p.name for p in (out / camera).iterdir()}
        assert names == {"masks.json", "masks", *VIDEOS}, names
    assert not list(out.rglob("*.part*"))


@needs_ffprobe
@pytest.mark.parametrize("camera", ["ego", "exo"])
def test_avi_outputs_keep_every_frame_and_its_time(avi_job, camera: str) -> None:
    case, out, inputs, proc = avi_job
    assert proc.returncode == 0, proc.stderr
    info = probe(inputs[camera])
    (source,) = ffprobe_streams(inputs[camera], "duration,nb_read_frames", "v:0", count=True)
    assert info.num_frames == int(source["nb_read_frames"])
    assert np.all(np.diff(info.pts) > 0)
    records = json.loads((out / camera / "masks.json").read_text())
    assert records["num_frames"] == info.num_frames
    assert [r["frame"] for r in records["frames"]] == list(range(info.num_frames))
    assert [r["pts"] for r in records["frames"]] == info.times.tolist()
    assert len(list((out / camera / "masks").glob("*.png"))) == info.num_frames
    for name in VIDEOS:
        found = video_stream(out / camera / name)
        assert int(found["nb_read_frames"]) == info.num_frames, name
        assert float(found["duration"]) == pytest.approx(float(source["duration"]), abs=1e-3), name
        # Stamped from the frame table: the input's times exactly, the first frame at 0.
        np.testing.assert_allclose(ffprobe_times(out / camera / name), info.times, atol=1e-3)
    assert info.times[0] == 0.0


def test_avi_outputs_hold_each_frame_in_its_place(avi_job) -> None:
    """Frame i of every output is frame i of the input (B-frames once shifted them), and the seed frame's
    mask is the seed mask."""
    case, out, _, proc = avi_job
    assert proc.returncode == 0, proc.stderr
    for camera in ("ego", "exo"):
        matte = probe(out / camera / "matte.mov")
        with VideoReader(matte) as reader:
            assert [read_index(f.image) for f in reader.frames()] == list(range(FRAMES))
    seed = json.loads((out / "ego" / "masks.json").read_text())["frames"][SEED]
    expected = seed_mask(out / "seed.png", 96, 64)
    want = cv2.imread(str(expected), cv2.IMREAD_GRAYSCALE) > 0
    assert np.array_equal(cocomask.decode(seed["segmentation"]).astype(bool), want)


@needs_ffprobe
def test_avi_audio_in_redacted(avi_job) -> None:
    """AAC is copied packet for packet; PCM, which an MP4 cannot hold, becomes AAC with one note."""
    case, out, inputs, proc = avi_job
    assert proc.returncode == 0, proc.stderr
    audio = CASES[case]["audio"]
    notes = [line for line in proc.stderr.splitlines() if line.startswith("vggts: note:")]
    for camera in ("ego", "exo"):
        redacted = out / camera / "redacted.mp4"
        theirs = ffprobe_streams(inputs[camera], "codec_name,channels,duration", "a", count=True)
        ours = ffprobe_streams(redacted, "codec_name,channels,duration,nb_read_packets", "a", count=True)
        if not audio:
            assert ours == [] and theirs == []
            continue
        (mine,) = ours
        assert mine["codec_name"] == "aac" and mine["channels"] == theirs[0]["channels"]
        end = float(video_stream(inputs[camera])["duration"])
        assert float(mine["duration"]) == pytest.approx(end, abs=0.05)
        if audio == "aac":
            (packets,) = ffprobe_streams(inputs[camera], "nb_read_packets", "a", count=True)
            assert mine["nb_read_packets"] == packets["nb_read_packets"]
        else:
            assert ffprobe_streams(redacted, "codec_name", "v") == [{"codec_name": "h264"}]
    if audio == "pcm":
        assert len(notes) == 2, proc.stderr  # one line per redacted.mp4
        assert all("pcm_s16le" in n and "AAC" in n for n in notes)
    else:
        assert notes == [], proc.stderr


def test_avi_probe_counts_a_dropped_frame_as_a_gap(tmp_path: Path) -> None:
    """The AVI muxer marks a dropped frame with an empty chunk: the frame before stays on screen."""
    path = make_video(tmp_path / "v.avi", codec="mjpeg", bframes=0, frames=FRAMES, audio="aac")
    info = probe(path)
    (theirs,) = ffprobe_streams(path, "nb_frames,nb_read_frames", "v:0", count=True)
    assert int(theirs["nb_frames"]) == FRAMES + 1 and int(theirs["nb_read_frames"]) == FRAMES
    assert info.num_frames == FRAMES
    assert info.pts.tolist() == [0, *range(2, FRAMES + 1)]
    with VideoReader(info) as reader:
        assert [read_index(f.image) for f in reader.frames_reversed(chunk=4)] == list(range(FRAMES))[::-1]


# --------------------------------------------------------------------------- failed and interrupted jobs


@pytest.fixture
def small_job(tmp_path: Path) -> PropagateJob:
    ego = make_video(tmp_path / "ego.avi", frames=12, codec="mjpeg", bframes=0, audio="pcm", channels=2)
    exo = make_video(tmp_path / "exo.mp4", frames=10, width=80, height=48, audio=True)
    mask = seed_mask(tmp_path / "mask.png", 96, 64)
    return PropagateJob(
        src=ego,
        dsts=(exo,),
        masks=(mask,),
        out=tmp_path / "out",
        write=tuple(WRITE.split(",")),
        engine="classic",
    )


def no_outputs(out: Path) -> None:
    """Nothing under a final name and no partial file: only the journal's state folder may remain."""
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert [p for p in left if not p.startswith(".vggts/")] == [], left


def test_a_job_failing_while_finishing_leaves_no_output(small_job, monkeypatch) -> None:
    """The last camera's redacted.mp4 fails at its end: the first camera's finished outputs and the last
    camera's masks.json (finished before it) are not left under their final names."""
    finish = RedactSink._finish

    def failing(self) -> None:
        if self.info.path.name == "exo.mp4":
            raise VggtsError(f"{self.path}: finishing the video failed (Invalid argument)")
        finish(self)

    monkeypatch.setattr(RedactSink, "_finish", failing)
    with pytest.raises(VggtsError, match="finishing the video failed"):
        run(check_job(small_job), make_engine("classic"))
    no_outputs(small_job.out)


def test_an_interrupted_render_leaves_no_output(small_job, monkeypatch) -> None:
    """Ctrl-C half way through the second camera: nothing of either camera under a final name."""
    write = RleSink._write

    def interrupted(self, frame, mask, score) -> None:
        if self.info.path.name == "exo.mp4" and frame.index == 5:
            raise KeyboardInterrupt
        write(self, frame, mask, score)

    monkeypatch.setattr(RleSink, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(check_job(small_job), make_engine("classic"))
    no_outputs(small_job.out)
    # The journal is kept: --resume finishes the job with every output.
    monkeypatch.setattr(RleSink, "_write", write)
    resumed = PropagateJob(**{**small_job.__dict__, "resume": True})
    run(check_job(resumed), make_engine("classic"))
    for camera in ("ego", "exo"):
        assert {p.name for p in (small_job.out / camera).iterdir()} == {"masks.json", "masks", *VIDEOS}
    assert not list(small_job.out.rglob("*.part*"))
