"""Output sinks on real encoded videos: written files are decoded back (PyAV, ffprobe, pycocotools)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from media import HAVE_FFPROBE, ffprobe_streams, make_video, needs_ffprobe
from pycocotools import mask as coco_mask

from vggts_cli.errors import UsageError, VggtsError
from vggts_cli.geometry import Box
from vggts_cli.masks.ops import dilate
from vggts_cli.sinks.base import SinkOptions, parse_color
from vggts_cli.sinks.cover import Cover, CoverFrame
from vggts_cli.sinks.outputs import OUTPUT_KINDS, OUTPUT_NAMES, build_sinks
from vggts_cli.sinks.redact import redact
from vggts_cli.video.reader import VideoInfo, VideoReader, probe

WIDTH, HEIGHT, FRAMES = 160, 128, 8
FPS = Fraction(30000, 1001)
MARGIN = 6


def checker(index: int, width: int, height: int) -> np.ndarray:
    """8 px black/white squares on a coloured field: blur and mosaic change it, codecs keep it."""
    yy, xx = np.mgrid[:height, :width]
    on = ((yy // 8 + xx // 8) % 2).astype(bool)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = (40, 90, 160)
    image[on] = (235, 235, 235)
    return image


def object_mask(index: int) -> np.ndarray:
    """A 32x40 box that moves 2 px a frame, away from the frame's far corner."""
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[40:72, 50 + 2 * index : 90 + 2 * index] = True
    return mask


# The far corner, more than margin + blur reach from any object box.
FAR = (slice(100, HEIGHT), slice(0, 30))


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> VideoInfo:
    path = tmp_path_factory.mktemp("src") / "cam.mp4"
    make_video(path, width=WIDTH, height=HEIGHT, fps=FPS, frames=FRAMES, audio=True, pattern=checker)
    return probe(path)


@pytest.fixture(scope="module")
def frames(source: VideoInfo) -> list:
    with VideoReader(source) as reader:
        return list(reader.frames())


def run_sinks(kinds, out_dir: Path, source: VideoInfo, frames: list, options=None, masks=None, scores=None):
    sinks = build_sinks(kinds, out_dir, source, options or SinkOptions(margin_px=MARGIN))
    for frame in frames:
        mask = object_mask(frame.index) if masks is None else masks[frame.index]
        score = 0.9 if scores is None else scores[frame.index]
        for sink in sinks:
            sink.write(frame, mask, score)
    for sink in sinks:
        sink.close()


def decode(path: Path, fmt: str = "rgb24") -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format=fmt) for f in container.decode(video=0)]


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --- options -----------------------------------------------------------------------------------------


def test_parse_color_and_options() -> None:
    assert parse_color("#FF8000") == (255, 128, 0)
    assert parse_color("10, 20,30") == (10, 20, 30)
    assert SinkOptions(fill_color="00ff00").fill_color == (0, 255, 0)
    for bad in ("red", "#12345", "1,2", "300,0,0"):
        with pytest.raises(UsageError):
            parse_color(bad)
    with pytest.raises(UsageError):
        SinkOptions(redact_mode="smudge")
    with pytest.raises(UsageError):
        SinkOptions(overlay_opacity=1.5)
    options = SinkOptions()
    assert options.margin_for(1920, 1080) == 44  # 2 % of the diagonal
    assert options.margin_for(64, 48) == 4  # never below a few pixels
    assert options.blur_px(100) % 2 == 1 and options.blur_px(100) >= 49
    assert SinkOptions(pixel_block=12).block_px(500) == 12  # > 1: pixels


def test_build_sinks_names_and_unknown_kind(tmp_path, source) -> None:
    assert set(OUTPUT_NAMES) == set(OUTPUT_KINDS)
    with pytest.raises(UsageError, match="sparkles"):
        build_sinks(["rle", "sparkles"], tmp_path, source, SinkOptions())
    assert not any(tmp_path.iterdir())


# --- pixel work, without a codec in the way ----------------------------------------------------------


def test_redact_function_modes() -> None:
    image = checker(0, WIDTH, HEIGHT)
    region = np.zeros((22, 30), dtype=bool)
    region[2:20, 6:28] = True
    box = Box(x0=40, y0=30, x1=70, y1=52)
    outside = np.ones((HEIGHT, WIDTH), dtype=bool)
    outside[box.slices] &= ~region

    filled = redact(image, box, region, SinkOptions(redact_mode="fill", fill_color=(1, 2, 3)))
    assert (filled[box.slices][region] == (1, 2, 3)).all()
    np.testing.assert_array_equal(filled[outside], image[outside])

    blurred = redact(image, box, region, SinkOptions(redact_mode="blur"))
    inside = blurred[box.slices][region].astype(float)
    assert inside.std(axis=0).max() < 0.25 * image[box.slices][region].std(axis=0).max()
    np.testing.assert_array_equal(blurred[outside], image[outside])

    mosaic = redact(image, box, region, SinkOptions(redact_mode="pixelate", pixel_block=16))
    # Blocks sit on the frame's 16 px grid: one colour per block inside the region.
    block = mosaic[32:48, 48:64]
    assert region[2:18, 8:24].all() and (block == block[0, 0]).all()
    np.testing.assert_array_equal(mosaic[outside], image[outside])
    np.testing.assert_array_equal(image, checker(0, WIDTH, HEIGHT))  # the input is never modified


# --- files -------------------------------------------------------------------------------------------


def test_rle_sink_schema(tmp_path, source, frames) -> None:
    masks = [object_mask(i) if i != 3 else np.zeros((HEIGHT, WIDTH), dtype=bool) for i in range(FRAMES)]
    scores = [0.9 if i != 3 else 0.05 for i in range(FRAMES)]
    run_sinks(["rle"], tmp_path, source, frames, masks=masks, scores=scores)
    data = json.loads((tmp_path / "masks.json").read_text())
    assert list(data) == ["video", "width", "height", "fps", "num_frames", "objects", "frames"]
    assert data["objects"] == [{"id": 1, "name": "object"}]
    assert data["video"] == str(source.path)
    assert (data["width"], data["height"], data["fps"], data["num_frames"]) == (
        WIDTH,
        HEIGHT,
        "30000/1001",
        FRAMES,
    )
    assert [r["frame"] for r in data["frames"]] == list(range(FRAMES))
    for record, mask, score, t in zip(data["frames"], masks, scores, source.times, strict=True):
        assert list(record) == ["frame", "pts", "object", "score", "segmentation"]
        assert record["pts"] == pytest.approx(t)
        assert record["score"] == pytest.approx(score)
        assert record["segmentation"]["size"] == [HEIGHT, WIDTH]
        np.testing.assert_array_equal(coco_mask.decode(record["segmentation"]).astype(bool), mask)
    assert [p.name for p in tmp_path.iterdir()] == ["masks.json"]


def test_rle_sink_needs_every_frame_in_order(tmp_path, source, frames) -> None:
    (sink,) = build_sinks(["rle"], tmp_path, source, SinkOptions())
    with pytest.raises(VggtsError, match="expected frame 0"):
        sink.write(frames[1], object_mask(1), 0.9)
    sink.write(frames[0], object_mask(0), 0.9)
    with pytest.raises(VggtsError, match=f"1 of {FRAMES} frames"):
        sink.close()
    assert not any(tmp_path.iterdir())


def test_png_sequence(tmp_path, source, frames) -> None:
    run_sinks(["png"], tmp_path, source, frames)
    assert [p.name for p in tmp_path.iterdir()] == ["masks"]
    files = sorted((tmp_path / "masks").iterdir())
    assert [p.name for p in files] == [f"{i:06d}.png" for i in range(FRAMES)]
    for i, path in enumerate(files):
        png = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint8 and png.ndim == 2
        assert set(np.unique(png)) == {0, 255}
        np.testing.assert_array_equal(png == 255, object_mask(i))


@pytest.mark.parametrize("mode", ["blur", "pixelate", "fill"])
def test_redacted_video(tmp_path, source, frames, mode) -> None:
    options = SinkOptions(redact_mode=mode, margin_px=MARGIN, fill_color="#20c040", pixel_block=16)
    run_sinks(["redact"], tmp_path, source, frames, options=options)
    out = decode(tmp_path / "redacted.mp4")
    assert len(out) == FRAMES
    for i, (image, frame) in enumerate(zip(out, frames, strict=True)):
        # Inside the mask and in the margin ring around it the pixels change a lot; far away they do not.
        ring = dilate(object_mask(i), MARGIN - 1) & ~object_mask(i)
        for where in (object_mask(i), ring):
            assert diff(image[where], frame.image[where]) > 25, (mode, i)
        assert diff(image[FAR], frame.image[FAR]) < 4
        if mode == "fill":
            core = np.zeros_like(ring)
            core[44:68, 54 + 2 * i : 86 + 2 * i] = True
            error = np.abs(image[core].astype(int) - (0x20, 0xC0, 0x40))
            assert error.mean() < 3 and error.max() <= 12  # H.264 at crf 18 in 4:2:0
    with av.open(str(tmp_path / "redacted.mp4")) as container:
        assert len(container.streams.audio) == 1
        assert container.streams.video[0].average_rate == FPS
    if HAVE_FFPROBE:
        kinds = sorted(s["codec_type"] for s in ffprobe_streams(tmp_path / "redacted.mp4", "codec_type"))
        assert kinds == ["audio", "video"]


def test_redaction_covers_a_missed_frame(tmp_path, source, frames) -> None:
    """Frame 4 lost its mask: neighbours cover it (spread), or the hold-over does (from frames 3 and 5)."""
    still = {"margin_px": 0, "redact_grow": 0.0, "redact_motion": 0.0, "redact_mode": "fill"}
    cases = {  # name: options, {frame with an empty mask: its score}, is frame 4 covered
        "spread": (SinkOptions(**still, redact_spread=1, redact_hold=0), {4: 0.0}, True),
        "held": (SinkOptions(**still, redact_spread=0, redact_hold=2), {4: 0.9}, True),
        "held, low score": (SinkOptions(**still, redact_spread=0, redact_hold=2), {4: 0.0}, True),
        "no hold": (SinkOptions(**still, redact_spread=0, redact_hold=0), {4: 0.9}, False),
        "held backward": (
            SinkOptions(**still, redact_spread=0, redact_hold=3),
            {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0},
            True,
        ),
        "beyond the hold": (
            SinkOptions(**still, redact_spread=0, redact_hold=1),
            {i: 0.0 for i in range(6)},
            False,
        ),
    }
    core = np.zeros((HEIGHT, WIDTH), dtype=bool)
    core[44:68, 62:86] = True  # inside the boxes of frames 2 to 6
    for name, (options, lost, expected) in cases.items():
        masks = [
            np.zeros((HEIGHT, WIDTH), dtype=bool) if i in lost else object_mask(i) for i in range(FRAMES)
        ]
        scores = [lost.get(i, 0.9) for i in range(FRAMES)]
        out_dir = tmp_path / name.replace(" ", "_").replace(",", "")
        run_sinks(["redact"], out_dir, source, frames, options=options, masks=masks, scores=scores)
        image = decode(out_dir / "redacted.mp4")[4]
        covered = image[core].astype(int).mean() < 8  # filled black
        assert covered == expected, name


def cover_of(masks: list[np.ndarray], scores: list[float], **options) -> list[CoverFrame]:
    cover = Cover(SinkOptions(**options), WIDTH, HEIGHT)
    out = [c for i, (m, s) in enumerate(zip(masks, scores, strict=True)) for c in cover.push(i, m, s)]
    return out + cover.flush()


def test_cover_holds_a_shrunk_or_unsure_mask_and_grows_with_motion() -> None:
    """A mask much smaller than the last sure one, or scoring under min_score, adds the held mask; the
    held mask grows by the object's motion (2 px a frame) times the frames since; covers come out in
    order, one per frame."""
    still = {"margin_px": 0, "redact_grow": 0.0, "redact_motion": 0.0, "redact_spread": 0, "redact_hold": 3}
    masks = [object_mask(i) for i in range(FRAMES)]
    masks[4] = np.zeros_like(masks[4])
    masks[4][40:44, 58:62] = True  # a sliver: much smaller
    scores = [0.9] * FRAMES
    scores[6] = 0.2  # unsure
    covers = cover_of(masks, scores, **still)
    assert [c.index for c in covers] == list(range(FRAMES))
    assert [c.held for c in covers] == [False, False, False, False, True, False, True, False]
    full4 = covers[4].full(HEIGHT, WIDTH)
    assert full4[object_mask(3)].all() and full4[40:72, 54:56].any()  # frame 3's mask, grown by motion
    assert not covers[3].full(HEIGHT, WIDTH)[object_mask(3) == 0].any()  # a sure frame: its mask only
    moving = cover_of(masks, scores, **{**still, "redact_motion": 1.0})[5].full(HEIGHT, WIDTH)
    assert moving.sum() > object_mask(5).sum()  # the margin follows the motion
    with pytest.raises(UsageError, match="--min-score"):
        SinkOptions(redact_min_score=float("nan"))
    with pytest.raises(UsageError, match="--hold"):
        SinkOptions(redact_hold=-1)


@needs_ffprobe
def test_matte_has_alpha(tmp_path, source, frames) -> None:
    run_sinks(["matte"], tmp_path, source, frames)
    (video,) = ffprobe_streams(tmp_path / "matte.mov", "codec_name,pix_fmt", "v")
    assert video["codec_name"] == "prores" and "yuva" in video["pix_fmt"]
    out = decode(tmp_path / "matte.mov", "rgba")
    assert len(out) == FRAMES
    for i, (image, frame) in enumerate(zip(out, frames, strict=True)):
        alpha = image[..., 3].astype(int)
        assert np.abs(alpha - object_mask(i) * 255).max() <= 2
        assert diff(image[..., :3], frame.image) < 4


def test_overlay(tmp_path, source, frames) -> None:
    options = SinkOptions(overlay_color="#ff0000", overlay_opacity=0.6)
    run_sinks(["overlay"], tmp_path, source, frames, options=options)
    out = decode(tmp_path / "overlay.mp4")
    assert len(out) == FRAMES
    for i, (image, frame) in enumerate(zip(out, frames, strict=True)):
        inside = image[object_mask(i)].astype(int)
        assert (inside[:, 0] - inside[:, 2]).mean() > 60  # tinted red
        assert diff(image[FAR], frame.image[FAR]) < 4


def test_abort_leaves_nothing(tmp_path, source, frames) -> None:
    sinks = build_sinks(OUTPUT_KINDS, tmp_path, source, SinkOptions())
    for frame in frames[:3]:
        for sink in sinks:
            sink.write(frame, object_mask(frame.index), 0.9)
    for sink in sinks:
        sink.abort()
    assert not any(tmp_path.iterdir())


def test_redaction_looking_ahead_equals_waiting(tmp_path, source, frames) -> None:
    """Fed the masks ahead (as the render stage does from the journal), the redaction writes each frame at
    once and the video is the same as when frames wait for their cover."""
    masks = [np.zeros((HEIGHT, WIDTH), dtype=bool) if i in (2, 3) else object_mask(i) for i in range(FRAMES)]
    scores = [0.9] * FRAMES
    options = SinkOptions(redact_mode="fill", redact_hold=3)
    run_sinks(["redact"], tmp_path / "wait", source, frames, options=options, masks=masks, scores=scores)
    (sink,) = build_sinks(["redact"], tmp_path / "ahead", source, options, upcoming=lambda i: (masks[i], 0.9))
    for frame in frames:
        sink.write(frame, masks[frame.index], 0.9)
        assert not sink._pending  # written at once
    sink.close()
    for waited, ahead in zip(
        decode(tmp_path / "wait/redacted.mp4"), decode(tmp_path / "ahead/redacted.mp4"), strict=True
    ):
        assert np.array_equal(waited, ahead)
