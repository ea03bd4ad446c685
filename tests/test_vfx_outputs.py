"""VFX outputs on real encoded videos with exact masks: `--start-number` names the image sequences' files,
`--write alpha` writes one straight-alpha matte sequence per object (16-bit PNG or half-float EXR) equal to
the object's masks in masks.json, and `--overwrite` removes an earlier job's alpha folders."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest
from media import make_video
from recordings import make_tiled_recording

from vggts_cli.batch.manifest import load_manifest
from vggts_cli.cli.app import app
from vggts_cli.errors import VggtsError
from vggts_cli.jobs import check_job, fingerprint
from vggts_cli.masks import rle
from vggts_cli.masks.objects import TrackedObject
from vggts_cli.sinks.base import SinkOptions
from vggts_cli.sinks.outputs import build_sinks
from vggts_cli.video.reader import VideoReader, probe
from vggts_cli.video.sequence import probe_sequence, read_image

CAMERAS = ("ego", "exo")


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """Two objects side by side: 12 ego and 10 exo frames at a fifth of the example's size."""
    return make_tiled_recording(tmp_path_factory.mktemp("two"), objects=2, seconds=0.4, scale=0.2)


def _masks(masks_json: dict) -> dict[tuple[int, int], np.ndarray]:
    """masks.json -> (object id, frame) -> its mask."""
    return {(r["object"], r["frame"]): rle.decode(r["segmentation"]) for r in masks_json["frames"]}


def _exr_channels(data: bytes) -> list[tuple[str, int]]:
    """The (name, pixel type) of every channel in an EXR header's chlist (pixel type 1 = half)."""
    start = data.index(b"channels\0chlist\0") + len(b"channels\0chlist\0") + 4
    channels, i = [], start
    while data[i] != 0:
        end = data.index(b"\0", i)
        channels.append((data[i:end].decode(), int.from_bytes(data[end + 1 : end + 5], "little")))
        i = end + 1 + 16  # pixel type, pLinear + reserved, x and y sampling
    return channels


def test_start_number_names_masks_and_alpha_sequences_which_equal_masks_json(cli, two, tmp_path):
    seed = two.label_png(tmp_path / "labels.png", ids=(1, 2))
    out = tmp_path / "out"
    args = ["--src", two.videos[0], "--dst", two.videos[1], "--mask", seed, "--out", out]
    result = cli(
        app, "propagate", *args, "--engine", "classic", "--write", "rle,png,alpha", "--start-number", "1001"
    )
    assert result.exit_code == 0, result.output
    for cam in CAMERAS:
        data = json.loads((out / cam / "masks.json").read_text())
        n = data["num_frames"]
        names = [f"{1001 + i:06d}.png" for i in range(n)]
        assert names[0] == "001001.png"
        assert sorted(p.name for p in (out / cam / "masks").iterdir()) == names
        assert sorted(p.name for p in (out / cam / "alpha").iterdir()) == ["object-1", "object-2"]
        masks = _masks(data)
        for obj in (1, 2):
            folder = out / cam / "alpha" / f"object-{obj}"
            assert sorted(p.name for p in folder.iterdir()) == names
            for i, name in enumerate(names):
                alpha = cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED)
                assert alpha.dtype == np.uint16 and alpha.ndim == 2  # 16-bit, one channel
                assert set(np.unique(alpha)) <= {0, 65535}
                np.testing.assert_array_equal(alpha == 65535, masks[(obj, i)])
        labels = cv2.imread(str(out / cam / "masks" / names[3]), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(labels == 2, masks[(2, 3)])  # masks/ numbered the same way
    assert not list(out.glob("*/*.part*"))


def test_exr_alpha_is_half_float_channel_y_and_reads_back_as_the_mask(cli, two, tmp_path):
    cv2.imwrite(str(tmp_path / "face.png"), two.truth(0, 0, 0).astype(np.uint8) * 255)
    out = tmp_path / "out"
    args = ["--src", two.videos[0], "--mask", tmp_path / "face.png", "--out", out, "--engine", "classic"]
    result = cli(app, "propagate", *args, "--write", "rle,alpha", "--alpha-format", "exr")
    assert result.exit_code == 0, result.output
    data = json.loads((out / "ego" / "masks.json").read_text())
    masks = _masks(data)
    assert [p.name for p in (out / "ego" / "alpha").iterdir()] == ["face"]  # one object: one folder
    folder = out / "ego" / "alpha" / "face"
    files = sorted(folder.iterdir())
    assert [p.name for p in files] == [f"{i:06d}.exr" for i in range(data["num_frames"])]  # default 0
    for i, path in enumerate(files):
        raw = path.read_bytes()
        assert _exr_channels(raw) == [("Y", 1)]  # one channel, HALF
        with av.open(io.BytesIO(raw), format="exr_pipe") as container:
            alpha = next(container.decode(video=0)).to_ndarray(format="grayf32le")
        assert set(np.unique(alpha)) <= {0.0, 1.0}
        np.testing.assert_array_equal(alpha == 1.0, masks[(1, i)])
    info = probe_sequence(folder)  # the repo's own sequence reader takes it as a camera
    assert info.num_frames == len(files) and (info.width, info.height) == (data["width"], data["height"])
    np.testing.assert_array_equal(read_image(files[4])[..., 0] == 255, masks[(1, 4)])


def test_overwrite_without_alpha_removes_the_alpha_folder(cli, two, tmp_path):
    seed = two.label_png(tmp_path / "labels.png", ids=(1, 2))
    out = tmp_path / "out"
    args = ["--src", two.videos[0], "--mask", seed, "--out", out, "--engine", "classic"]
    assert cli(app, "propagate", *args, "--write", "rle,alpha").exit_code == 0
    assert (out / "ego" / "alpha" / "object-2").is_dir()
    result = cli(app, "propagate", *args, "--write", "rle", "--overwrite")
    assert result.exit_code == 0, result.output
    assert (out / "ego" / "masks.json").is_file() and not (out / "ego" / "alpha").exists()


@pytest.mark.parametrize("value", ["-1", "10000000", "1e3"])
def test_a_bad_start_number_is_one_line_and_exit_2(two, tmp_path, value):
    env = {**os.environ, "COLUMNS": "1000"}
    args = ["propagate", "--src", two.videos[0], "--mask", two.label_png(tmp_path / "m.png", ids=(1,))]
    args += ["--out", tmp_path / "out", "--write", "alpha", "--start-number", value]
    proc = subprocess.run(
        [sys.executable, "-m", "vggts_cli", *map(str, args)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("vggts: error: ") and "--start-number" in line, line
    assert not (tmp_path / "out").exists()


def test_start_number_and_alpha_format_are_checked_options():
    assert SinkOptions(start_number=1001).start_number == 1001
    for bad in (-5, 10**8, True, 1.5):
        with pytest.raises(Exception, match="--start-number"):
            SinkOptions(start_number=bad)
    with pytest.raises(Exception, match="--alpha-format 'tiff' is not one of png, exr"):
        SinkOptions(alpha_format="tiff")


def test_alpha_sink_writes_under_a_partial_name_and_aborts_cleanly(tmp_path):
    info = probe(make_video(tmp_path / "cam.mp4", width=48, height=32, frames=3))
    objects = (TrackedObject(1, "face"), TrackedObject(2, "badge"))
    masks = np.zeros((2, 32, 48), bool)
    masks[0, 4:12, 4:20], masks[1, 20:28, 30:40] = True, True
    for file_format in ("png", "exr"):
        out = tmp_path / file_format
        options = SinkOptions(start_number=1001, alpha_format=file_format)
        (sink,) = build_sinks(["alpha"], out, info, options, objects)
        with VideoReader(info) as reader:
            frames = list(reader.frames())
        for frame in frames[:2]:
            sink.write(frame, masks, (0.9, 0.8))
        assert sorted(p.name for p in out.iterdir()) == ["alpha.part"]
        with pytest.raises(VggtsError, match="got 2 of 3 frames"):
            sink.close()  # a frame missing: nothing under either name
        assert not any(out.iterdir())
        (sink,) = build_sinks(["alpha"], out, info, options, objects)
        for frame in frames:
            sink.write(frame, masks, (0.9, 0.8))
        sink.finish()
        assert not (out / "alpha").exists()  # finished, not yet committed
        sink.commit()
        assert sorted(p.name for p in out.iterdir()) == ["alpha"]
        assert sorted(p.name for p in (out / "alpha" / "badge").iterdir()) == [
            f"{n}.{file_format}" for n in ("001001", "001002", "001003")
        ]


def test_manifest_columns_and_the_resume_fingerprint_carry_the_new_options(two, tmp_path):
    seed = two.label_png(tmp_path / "labels.png", ids=(1, 2))
    manifest = tmp_path / "jobs.jsonl"
    row = {"id": "shot", "src": str(two.videos[0]), "mask": str(seed), "write": "rle,alpha"}
    rows = [{**row, "start_number": 1001, "alpha_format": "exr"}, {**row, "id": "bad", "start_number": -1}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    jobs, bad = load_manifest(manifest, tmp_path / "out")
    [job] = jobs
    assert (job.job.sink_options.start_number, job.job.sink_options.alpha_format) == (1001, "exr")
    assert job.outputs == ("ego/masks.json", "ego/alpha")
    assert [b.id for b in bad] == ["bad"] and "--start-number -1" in bad[0].error
    printed = fingerprint(check_job(job.job))
    assert (printed["--start-number"], printed["--alpha-format"]) == (1001, "exr")
