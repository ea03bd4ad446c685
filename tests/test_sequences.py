"""Image sequences as cameras: a folder, a printf pattern or a glob of PNG (8/16-bit), JPEG, EXR or TIFF
frames, decoded like video frames, timed at --fps, through every output; the one-line errors; --resume
comparing the frames' content."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from media import ffprobe_streams as streams
from media import make_video, needs_ffprobe, pattern, read_index

from vggts_cli.batch.manifest import load_manifest
from vggts_cli.cli.app import app
from vggts_cli.errors import VggtsError
from vggts_cli.jobs import PropagateJob, camera_names, check_job, fingerprint
from vggts_cli.synth.scene import Scene, ego_exo_cameras
from vggts_cli.video.inputs import open_camera, probe_input
from vggts_cli.video.reader import VideoInfo
from vggts_cli.video.sequence import SequenceInfo, is_sequence, linear_to_srgb8, parse_fps, probe_sequence

W, H = 64, 48
FRAMES = 8


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """uint8 sRGB -> float32 linear light, the inverse of the decoder's curve."""
    c = image.astype(np.float64) / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def write_exr(path: Path, rgb: np.ndarray, half: bool = False) -> None:
    """(H, W, 3) float32 linear RGB as an EXR file, with FFmpeg's encoder (OpenCV here has no OpenEXR)."""
    with av.open(str(path), "w", format="image2pipe") as container:
        stream = container.add_stream("exr", rate=1, options={"format": "half" if half else "float"})
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "gbrpf32le"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[..., [1, 2, 0]]), format="gbrpf32le")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def write_frame(path: Path, rgb: np.ndarray, kind: str) -> Path:
    """`rgb` ((H, W, 3) uint8) as a frame file of `kind`: png8, png16, jpeg, exr, tiff16."""
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    if kind == "exr":
        write_exr(path, srgb_to_linear(rgb))
    elif kind in ("png16", "tiff16"):
        assert cv2.imwrite(str(path), bgr.astype(np.uint16) * 257)
    else:
        assert cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95] if kind == "jpeg" else [])
    return path


SUFFIX = {"png8": "png", "png16": "png", "jpeg": "jpg", "exr": "exr", "tiff16": "tif"}


def write_sequence(
    folder: Path, images: list[np.ndarray], kind: str, name: str = "{:04d}", first: int = 0
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        write_frame(folder / f"{name.format(first + i)}.{SUFFIX[kind]}", image, kind)
    return folder


def scene_frames(frames: int = FRAMES, camera: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """A camera of the example rig at W x H: its frames and frame 0's object mask."""
    scene = Scene.generate(0, duration=frames / 20)
    cam = ego_exo_cameras(frames / 20)[camera]
    cam = replace(cam, width=W, height=H, zoom=cam.zoom * W / cam.width, fps=Fraction(20), num_frames=frames)
    rendered = [scene.render(cam, i) for i in range(frames)]
    return [image for image, _ in rendered], rendered[0][1]


@pytest.fixture(scope="module")
def ego() -> tuple[list[np.ndarray], np.ndarray]:
    return scene_frames(FRAMES, 0)


@pytest.fixture
def seed(tmp_path, ego) -> Path:
    path = tmp_path / "seed.png"
    cv2.imwrite(str(path), ego[1].astype(np.uint8) * 255)
    return path


# --- decoding --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "tolerance"), [("png8", 0), ("png16", 0), ("tiff16", 0), ("exr", 0), ("jpeg", None)]
)
def test_frames_decode_as_rgb8_like_video_frames(tmp_path, kind, tolerance):
    images = [pattern(i, W, H) for i in range(5)]
    folder = write_sequence(tmp_path / "plate", images, kind)
    info = probe_input(folder)
    assert isinstance(info, SequenceInfo)
    assert (info.width, info.height, info.num_frames, info.rotation, info.audio_streams) == (W, H, 5, 0, 0)
    with open_camera(info) as reader:
        frames = list(reader.frames())
        backward = list(reader.frames_reversed(1, 4))
    for i, frame in enumerate(frames):
        assert frame.image.dtype == np.uint8 and frame.image.shape == (H, W, 3)
        assert frame.index == frame.pts == i and frame.time == i / 25
        assert read_index(frame.image) == i  # upright, and the right file
        error = np.abs(frame.image.astype(int) - images[i])
        # JPEG: lossy, and its subsampled chroma smears the pattern's sharp edges.
        assert error.max() <= tolerance if tolerance is not None else error.mean() < 6
    assert frames[0].image[H // 2, 1, 0] > 200 > frames[0].image[H // 2, 1, 2]  # the red bar is red: RGB
    assert [f.index for f in backward] == [3, 2, 1]


def test_half_float_exr_float_tiff_grey_and_alpha_become_rgb8(tmp_path):
    image = pattern(3, W, H)
    write_exr(tmp_path / "half.exr", srgb_to_linear(image), half=True)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    cv2.imwrite(str(tmp_path / "grey16.png"), grey.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "alpha.png"), np.dstack([image[..., ::-1], np.full((H, W), 7, np.uint8)]))
    cv2.imwrite(str(tmp_path / "float.tif"), srgb_to_linear(image)[..., ::-1])  # float: linear, like EXR
    for name, want, tolerance in [
        ("half.exr", image, 1),
        ("grey.png", np.dstack([grey] * 3), 0),
        ("grey16.png", np.dstack([grey] * 3), 0),
        ("alpha.png", image, 0),
        ("float.tif", image, 0),
    ]:
        info = probe_input(tmp_path / name.replace(".", "*."))  # a glob of one file
        with open_camera(info) as reader:
            got = next(reader.frames()).image
        assert got.shape == (H, W, 3) and np.abs(got.astype(int) - want).max() <= tolerance, name


def test_linear_light_is_clipped_and_encoded_with_the_srgb_curve():
    linear = np.array([-1.0, 0.0, np.nan, 0.002, 0.5, 1.0, 7.0, np.inf], np.float32)
    assert linear_to_srgb8(linear).tolist() == [0, 0, 0, 7, 188, 255, 255, 255]


# --- naming, ordering, patterns ------------------------------------------------------------------------


def test_a_folder_sorts_naturally_and_takes_only_image_files(tmp_path):
    folder = tmp_path / "plate"
    folder.mkdir()
    for i in (10, 2, 1):
        write_frame(folder / f"frame{i}.png", pattern(i, W, H), "png8")
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".hidden.png").write_bytes(b"")
    info = probe_input(folder)
    assert [f.name for f in info.files] == ["frame1.png", "frame2.png", "frame10.png"]
    assert info.codec == "png sequence"


def test_a_printf_pattern_may_start_anywhere_and_takes_only_its_own_numbers(tmp_path):
    folder = write_sequence(
        tmp_path / "shot", [pattern(i, W, H) for i in range(4)], "exr", "frame.{:04d}", 1001
    )
    write_frame(folder / "frame.12.exr", pattern(0, W, H), "exr")  # not %04d
    info = probe_input(folder / "frame.%04d.exr", Fraction(24))
    assert [f.name for f in info.files] == [f"frame.{n}.exr" for n in range(1001, 1005)]
    assert info.fps == 24 and info.time_base == Fraction(1, 24) and info.codec == "exr sequence"
    assert info.times.tolist() == [i / 24 for i in range(4)]


def test_camera_names_are_folder_names(tmp_path):
    for name in ("ego", "exo", "wide"):
        write_sequence(tmp_path / name, [pattern(0, W, H)], "png8")
    video = make_video(tmp_path / "side.mp4", width=W, height=H, frames=2)
    paths = [tmp_path / "ego", tmp_path / "exo" / "%04d.png", tmp_path / "wide" / "*.png", video]
    assert camera_names(paths) == ["ego", "exo", "wide", "side"]
    assert camera_names([tmp_path / "ego", tmp_path / "ego" / "%04d.png"]) == ["ego", "ego-2"]


def test_a_file_is_never_a_sequence(tmp_path):
    odd = make_video(tmp_path / "take%03d[1].mp4", width=W, height=H, frames=2)
    assert not is_sequence(odd) and not isinstance(probe_input(odd), SequenceInfo)
    assert is_sequence(tmp_path) and is_sequence(tmp_path / "x%04d.png") and is_sequence(tmp_path / "*.jpg")


@pytest.mark.parametrize("value", ["25", "23.976", "24000/1001", 30, 12.5])
def test_fps_takes_integers_decimals_and_fractions(value):
    assert parse_fps(value) == Fraction(str(value))


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "-inf", "abc", "1/0", "", "1e9", float("nan")])
def test_absurd_fps_is_refused(value):
    with pytest.raises(VggtsError, match="--fps takes a frame rate"):
        parse_fps(value)


# --- whole jobs through every output -------------------------------------------------------------------

OUTPUT_VIDEOS = ("overlay.mp4", "redacted.mp4", "matte.mov")


def check_outputs(out: Path, name: str, frames: int, fps: Fraction) -> None:
    """Every output of camera `name`: frame count and rate (ffprobe), masks.json's frames and times."""
    for video in OUTPUT_VIDEOS:
        (stream,) = streams(out / name / video, "nb_read_frames,avg_frame_rate,r_frame_rate", "v", count=True)
        assert int(stream["nb_read_frames"]) == frames, (name, video, stream)
        assert Fraction(stream["avg_frame_rate"]) == Fraction(stream["r_frame_rate"]) == fps, (name, video)
    assert not streams(out / name / "redacted.mp4", "codec_name", "a")  # a sequence has no audio
    masks = json.loads((out / name / "masks.json").read_text())
    assert masks["num_frames"] == len(masks["frames"]) == frames
    assert masks["fps"] == f"{fps.numerator}/{fps.denominator}"
    assert [r["frame"] for r in masks["frames"]] == list(range(frames))
    assert [r["pts"] for r in masks["frames"]] == pytest.approx(
        [i / float(fps) for i in range(frames)], abs=1e-9
    )
    assert len(list((out / name / "masks").glob("*.png"))) == frames


def propagate(cli, src: Path, dst: Path, seed: Path, out: Path, *options: str):
    write = "rle,overlay,redact,png,matte"
    args = ["propagate", "--src", src, "--dst", dst, "--mask", seed, "--out", out, "--write", write]
    return cli(app, *args, "--engine", "classic", *options)


@needs_ffprobe
@pytest.mark.parametrize(
    ("kind", "src_form", "dst_kind", "fps"),
    [
        ("png8", "pattern", "video", "12"),
        ("png16", "folder", "png8", "24000/1001"),
        ("jpeg", "glob", "video", None),
        ("exr", "pattern", "jpeg", "30"),
        ("tiff16", "folder", "video", "25"),
    ],
)
def test_a_sequence_camera_through_every_output(tmp_path, cli, ego, seed, kind, src_form, dst_kind, fps):
    images, _ = ego
    folder = write_sequence(tmp_path / "plate", images, kind, "frame.{:04d}", first=1001)
    src = {
        "folder": folder,
        "pattern": folder / f"frame.%04d.{SUFFIX[kind]}",
        "glob": folder / f"*.{SUFFIX[kind]}",
    }[src_form]
    if dst_kind == "video":
        dst, dst_name, dst_frames, dst_fps = (
            make_video(tmp_path / "side.mp4", width=W, height=H, frames=10),
            "side",
            10,
            Fraction(30),
        )
    else:
        exo_images, _ = scene_frames(6, 1)
        dst = write_sequence(tmp_path / "exo", exo_images, dst_kind)
        dst_name, dst_frames, dst_fps = "exo", 6, parse_fps(fps or "25")
    out = tmp_path / "out"
    result = propagate(cli, src, dst, seed, out, *(["--fps", fps] if fps else []))
    assert result.exit_code == 0, result.output
    check_outputs(out, "plate", FRAMES, parse_fps(fps or "25"))
    check_outputs(out, dst_name, dst_frames, dst_fps)
    ego_masks = json.loads((out / "plate" / "masks.json").read_text())
    assert ego_masks["video"] == str(src)
    assert ego_masks["frames"][0]["score"] == 1.0  # the seed frame


@pytest.mark.parametrize(
    ("make", "src", "message"),
    [
        ("gap", "plate/%04d.png", "plate/0003.png: missing; the frames of"),
        ("empty", "plate", "plate: no image files (.png, .jpg, .jpeg, .exr, .tif, .tiff) in this folder"),
        ("mixed", "plate", "plate/0004.png: 32x24, but 0000.png is 64x48"),
        ("unreadable", "plate", "plate/0002.png: not a readable PNG image"),
        ("nothing", "plate/%05d.png", "plate/%05d.png: no file matches this pattern"),
        ("nothing", "plate/*.jpg", "plate/*.jpg: no image file"),
    ],
)
def test_bad_sequences_are_one_line_errors_and_write_nothing(tmp_path, cli, seed, make, src, message):
    folder = tmp_path / "plate"
    folder.mkdir()
    if make != "empty":
        for i in range(6):
            if make == "gap" and i == 3:
                continue
            size = (32, 24) if make == "mixed" and i >= 4 else (W, H)
            write_frame(folder / f"{i:04d}.png", pattern(i, *size), "png8")
    if make == "unreadable":
        (folder / "0002.png").write_bytes(b"\x89PNG not really")
    video = make_video(tmp_path / "side.mp4", width=W, height=H, frames=4)
    out = tmp_path / "out"
    result = propagate(cli, tmp_path / src, video, seed, out)
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("vggts: error: "), result.stderr
    assert message in result.stderr.replace(str(tmp_path) + "/", ""), result.stderr
    assert not out.exists()


@pytest.mark.parametrize("fps", ["0", "-2", "nan", "inf", "fast"])
def test_absurd_fps_is_a_usage_error(tmp_path, cli, seed, fps):
    folder = write_sequence(tmp_path / "plate", [pattern(i, W, H) for i in range(2)], "png8")
    video = make_video(tmp_path / "side.mp4", width=W, height=H, frames=2)
    result = propagate(cli, folder, video, seed, tmp_path / "out", "--fps", fps)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("vggts: error: --fps takes a frame rate above 0"), result.stderr
    assert not (tmp_path / "out").exists()


def test_resume_refuses_frames_whose_content_changed(tmp_path, cli, ego, seed):
    images, _ = ego
    folder = write_sequence(tmp_path / "plate", images, "png8")
    video = make_video(tmp_path / "side.mp4", width=W, height=H, frames=6)
    out = tmp_path / "out"
    assert propagate(cli, folder, video, seed, out, "--fps", "20").exit_code == 0
    again = propagate(cli, folder, video, seed, out, "--fps", "20", "--resume")
    assert again.exit_code == 0, again.output  # the same frames: the job's masks are kept
    other_fps = propagate(cli, folder, video, seed, out, "--fps", "24", "--resume")
    assert other_fps.exit_code == 2 and "--fps differs from the journal" in other_fps.stderr, other_fps.stderr
    changed = images[5].copy()
    changed[0, 0] ^= 1  # one pixel, same size
    write_frame(folder / "0005.png", changed, "png8")
    refused = propagate(cli, folder, video, seed, out, "--fps", "20", "--resume")
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith("vggts: error: --resume: --src is not the input"), refused.stderr


def test_a_video_job_is_fingerprinted_as_before(tmp_path, seed):
    videos = [make_video(tmp_path / f"{n}.mp4", width=W, height=H, frames=3) for n in ("ego", "exo")]
    out = tmp_path / "out"
    job = PropagateJob(src=videos[0], dsts=(videos[1],), masks=(seed,), out=out, fps=Fraction(50))
    prepared = check_job(job)
    assert "--fps" not in fingerprint(prepared)  # --fps does not apply: a video keeps its own timing
    assert all(type(c.info) is VideoInfo and c.info.fps == 30 for c in prepared.cameras)


def test_a_manifest_row_takes_an_fps_column(tmp_path, ego, seed):
    folder = write_sequence(tmp_path / "plate", ego[0], "png8")
    make_video(tmp_path / "side.mp4", width=W, height=H, frames=4)
    manifest = tmp_path / "jobs.csv"
    with manifest.open("w", newline="") as f:
        rows = [
            {"id": "a", "src": "plate/%04d.png", "dst": "side.mp4", "mask": seed.name, "fps": "12"},
            {"id": "b", "src": "plate", "dst": "side.mp4", "mask": seed.name, "fps": ""},
            {"id": "c", "src": "plate", "dst": "side.mp4", "mask": seed.name, "fps": "zero"},
        ]
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    jobs, bad = load_manifest(manifest, tmp_path / "out")
    assert [(j.id, j.job.fps, j.frames) for j in jobs] == [("a", 12, FRAMES + 4), ("b", 25, FRAMES + 4)]
    assert [b.id for b in bad] == ["c"] and bad[0].error.startswith("fps takes a frame rate"), bad
    assert probe_sequence(folder, Fraction(12)).digest == probe_sequence(folder).digest  # content only
