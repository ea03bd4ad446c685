"""A job's state in its output folder: `--resume` byte-identical after SIGINT, SIGTERM or SIGKILL for both
engines, `--overwrite` leaving only the new job's outputs, one job per folder, inputs checked by content,
no partial file after SIGTERM, absurd option values refused."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from recordings import Recording, make_recording

KILLED_JOB = Path(__file__).with_name("killed_job.py")
OUTPUTS = ("masks.json", "overlay.mp4", "redacted.mp4")
EXIT = {"INT": 130, "TERM": 143, "KILL": -signal.SIGKILL}


def vggts(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "vggts_cli", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"vggts {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def stopped(action: str, point: str, *args: str) -> subprocess.CompletedProcess:
    """`vggts ARGS` stopped by itself with `action` at `point` (see killed_job.py)."""
    return subprocess.run(
        [sys.executable, str(KILLED_JOB), action, point, *args], capture_output=True, text=True
    )


def files(out: Path) -> set[str]:
    """Every file under `out` outside the job's state folder, relative."""
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and ".vggts" not in p.parts}


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> Recording:
    """9 ego and 8 exo frames, with audio."""
    return make_recording(tmp_path_factory.mktemp("rec"), seconds=0.3, scale=0.25, audio=True)


@pytest.fixture(scope="module")
def seed(rec, tmp_path_factory) -> Path:
    return rec.seed_png(tmp_path_factory.mktemp("seed") / "m.png", 3)


def job_args(rec: Recording, seed: Path, engine: str, *options: str) -> list[str]:
    extra = ("--device", "cpu") if engine == "vggts" else ()
    write = ("--write", "rle,overlay,redact")
    # The learned engine tunes itself to the mask (a few steps): a resumed job must tune to the same weights.
    args = ("--mask-frame", "3", *write, *extra, *options)
    return rec.propagate_args(seed, *args, engine=engine, adapt=3)


@pytest.fixture(scope="module")
def clean(rec, seed, tmp_path_factory) -> dict[str, Path]:
    """An uninterrupted run per engine."""
    runs = {}
    for engine in ("classic", "vggts"):
        out = tmp_path_factory.mktemp(f"clean-{engine}")
        vggts(*job_args(rec, seed, engine), "--out", str(out))
        runs[engine] = out
    return runs


# Three stops: SIGINT on the forward leg's first backbone window, SIGTERM in its second, SIGKILL on the
# backward leg; and SIGTERM while the outputs are being written.
STOPS = [("INT", "2"), ("TERM", "8"), ("KILL", "14"), ("TERM", "render:5")]


@pytest.mark.parametrize("engine", ["classic", "vggts"])
@pytest.mark.parametrize(("action", "point"), STOPS)
def test_resume_is_byte_identical(tmp_path, rec, seed, clean, engine, action, point):
    if engine == "vggts" and point.startswith("render"):
        pytest.skip("rendering does not depend on the engine")
    out = tmp_path / "out"
    args = job_args(rec, seed, engine)
    proc = stopped(action, point, *args, "--out", str(out))
    assert proc.returncode == EXIT[action], proc.stderr
    if action != "KILL":
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "--resume" in lines[0], proc.stderr
    # Stopped: nothing half-written and nothing under a final name.
    assert not [p for p in out.rglob("*.part*") if ".vggts" not in p.parts] or action == "KILL"
    assert files(out) == set() or action == "KILL"
    vggts(*args, "--out", str(out), "--resume")
    for cam in ("ego", "exo"):
        for name in OUTPUTS:
            assert (out / cam / name).read_bytes() == (clean[engine] / cam / name).read_bytes(), (cam, name)
    assert not list(out.rglob("*.part*"))


@pytest.fixture(scope="module")
def two_objects(rec, tmp_path_factory) -> tuple[Path, Path]:
    """A label map of the object's two halves on ego frame 3 (the seed), and one on ego frame 7 (a prompt)."""
    folder = tmp_path_factory.mktemp("objects")
    paths = []
    for frame in (3, 7):
        mask = rec.truth(0, frame)
        middle = int(np.median(np.nonzero(mask)[1]))
        labels = mask.astype(np.uint8)
        labels[:, middle:] *= 2
        paths.append(folder / f"labels{frame}.png")
        cv2.imwrite(str(paths[-1]), labels)
    return paths[0], paths[1]


@pytest.mark.parametrize("engine", ["classic", "vggts"])
def test_resume_with_two_objects_and_a_prompt_is_byte_identical(tmp_path, rec, two_objects, engine):
    """Each object's engine state (the learned engine's twins) and the prompt's legs come back on --resume."""
    seed, prompt = two_objects
    args = job_args(rec, seed, engine, "--mask", f"ego:7:{prompt}")
    vggts(*args, "--out", str(tmp_path / "clean"))
    proc = stopped("TERM", "8", *args, "--out", str(tmp_path / "out"))
    assert proc.returncode == EXIT["TERM"], proc.stderr
    vggts(*args, "--out", str(tmp_path / "out"), "--resume")
    for cam in ("ego", "exo"):
        for name in OUTPUTS:
            resumed, clean = (tmp_path / run / cam / name for run in ("out", "clean"))
            assert resumed.read_bytes() == clean.read_bytes(), (cam, name)


def test_overwrite_leaves_only_the_new_jobs_outputs(tmp_path, rec, seed):
    out = tmp_path / "out"
    vggts(*job_args(rec, seed, "classic", "--write", "rle,overlay,redact,png"), "--out", str(out))
    (out / "notes.txt").write_text("mine")  # not vggts's: stays
    assert {"ego/overlay.mp4", "exo/redacted.mp4", "exo/masks/000000.png"} <= files(out)
    vggts(*job_args(rec, seed, "classic", "--write", "rle"), "--out", str(out), "--overwrite")
    assert files(out) == {"ego/masks.json", "exo/masks.json", "notes.txt"}


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--write", "rle"),
        ("--redact", "fill"),
        ("--margin", "7"),
        ("--mask-frame", "4"),
        ("--start-number", "1001"),
        ("--detail", "fine"),  # printed only where it is given: the journal has none
    ],
)
def test_resume_with_other_options_is_refused(tmp_path, rec, seed, option, value):
    out = tmp_path / "out"
    args = job_args(rec, seed, "classic")
    assert stopped("KILL", "5", *args, "--out", str(out)).returncode == -signal.SIGKILL
    proc = vggts(*args, option, value, "--out", str(out), "--resume", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"vggts: error: --resume: {option} ")


def test_resume_with_other_tuning_is_refused(tmp_path, rec, seed):
    out = tmp_path / "out"
    args = job_args(rec, seed, "vggts")
    assert stopped("KILL", "5", *args, "--out", str(out)).returncode == -signal.SIGKILL
    proc = vggts(*args, "--adapt", "4", "--out", str(out), "--resume", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("vggts: error: --resume: --adapt ")


def test_two_jobs_on_one_out(tmp_path, rec, seed):
    """A second job on a folder a live job holds fails at once, naming the holder; the first finishes."""
    out = tmp_path / "out"
    args = [*job_args(rec, seed, "classic"), "--out", str(out)]
    first = subprocess.Popen(
        [sys.executable, str(KILLED_JOB), "PAUSE", "5", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout is not None and first.stdin is not None
        assert first.stdout.readline() == "paused\n"  # the job holds the lock and waits for us
        for extra in ([], ["--resume"], ["--overwrite"]):
            proc = vggts(*args, *extra, check=False)
            assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
            assert f"pid {first.pid} on {socket.gethostname()}, started " in proc.stderr
        first.stdin.write("\n")
        first.stdin.close()
        assert first.wait() == 0, first.stderr.read() if first.stderr else ""
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert files(out) == {f"{cam}/{name}" for cam in ("ego", "exo") for name in OUTPUTS}
    vggts(*args, "--overwrite")  # the lock went with the job


def _flip_a_payload_byte(video: Path) -> None:
    """Change one byte inside the last video packet's payload: same size, same frame count."""
    import av

    with av.open(str(video)) as container:
        last = [p for p in container.demux(video=0) if p.size][-1]
        where = last.pos + last.size // 2
    data = bytearray(video.read_bytes())
    data[where] ^= 0xFF
    video.write_bytes(bytes(data))


def test_resume_refuses_an_input_swapped_for_other_content(tmp_path, rec, seed):
    copy = make_recording(tmp_path / "rec", seconds=0.3, scale=0.25, audio=True)
    out = tmp_path / "out"
    args = job_args(copy, seed, "classic")
    assert stopped("KILL", "5", *args, "--out", str(out)).returncode == -signal.SIGKILL
    size = copy.videos[1].stat().st_size
    _flip_a_payload_byte(copy.videos[1])
    assert copy.videos[1].stat().st_size == size
    proc = vggts(*args, "--out", str(out), "--resume", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("vggts: error: --resume: --dst is not the input")


@pytest.mark.parametrize(
    "option",
    [
        ["--offset", "exo=nan"],
        ["--offset", "exo=inf"],
        ["--offset", "exo=-inf"],
        ["--margin", "-3"],
        ["--blur", "nan"],
        ["--pixel-size", "inf"],
        ["--blur", "-1"],
        ["--start-number", "-1"],
    ],
)
def test_absurd_option_values_are_refused(tmp_path, rec, seed, option):
    out = tmp_path / "out"
    proc = vggts(*job_args(rec, seed, "classic"), *option, "--out", str(out), check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("vggts: error: "), proc.stderr
    assert not out.exists()
