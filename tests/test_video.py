"""Video I/O on real files: probing, exact seeks, reverse reading, sync, and writers that keep timing."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import ffprobe_streams, frame_times, make_video, read_index

from vggts_cli.errors import VggtsError
from vggts_cli.fsutil import partial_path
from vggts_cli.synth.tiers import tier_videos
from vggts_cli.video.reader import VideoInfo, VideoReader, probe
from vggts_cli.video.sync import nearest_frames, world_times
from vggts_cli.video.writer import VideoWriter

NTSC = Fraction(30000, 1001)


def video_duration(path: Path) -> float:
    """The video stream's duration by ffprobe: MP4 states it, Matroska tags where the stream ends."""
    (found,) = ffprobe_streams(path, "start_time,duration:stream_tags=DURATION", "v:0")
    if "duration" in found:
        return float(found["duration"])
    hours, minutes, seconds = found["tags"]["DURATION"].split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds) - float(found["start_time"])


def read_all(info: VideoInfo) -> list[tuple[int, int]]:
    """(frame index, index drawn in the image) for every frame, read forward."""
    with VideoReader(info) as reader:
        return [(f.index, read_index(f.image)) for f in reader.frames()]


def copy_video(info: VideoInfo, writer: VideoWriter) -> None:
    with writer, VideoReader(info) as reader:
        for frame in reader.frames():
            writer.write(frame.image, frame.index)


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, VideoInfo]:
    """90-frame videos with B-frames and a keyframe every 25 frames: MP4, AVI (MPEG-4 ASP), MPEG-TS."""
    folder = tmp_path_factory.mktemp("long")
    return {
        "mp4": probe(make_video(folder / "long.mp4", frames=90, gop=25, bframes=3)),
        "avi": probe(make_video(folder / "long.avi", frames=90, gop=25, bframes=3, codec="mpeg4")),
        "ts": probe(make_video(folder / "long.ts", frames=90, gop=25, bframes=3)),
    }


@pytest.mark.parametrize(
    ("suffix", "codec", "decoder"),
    [
        (".mp4", "libx264", "h264"),
        (".mkv", "libx264", "h264"),
        (".avi", "mpeg4", "mpeg4"),
        (".webm", "libvpx-vp9", "vp9"),
        (".ts", "libx264", "h264"),
    ],
)
def test_probe_containers(tmp_path: Path, suffix: str, codec: str, decoder: str) -> None:
    path = make_video(tmp_path / f"v{suffix}", width=96, height=64, frames=30, codec=codec)
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (96, 64, 0)
    assert (info.num_frames, info.fps, info.codec, info.path.stem) == (30, Fraction(30), decoder, "v")
    assert info.pts.dtype == np.int64 and np.all(np.diff(info.pts) > 0)
    np.testing.assert_allclose(np.diff(info.times), 1 / 30, atol=1e-3)
    assert info.duration == pytest.approx(1.0, abs=1e-3)
    assert read_all(info) == [(i, i) for i in range(30)]
    (theirs,) = ffprobe_streams(path, "codec_name,r_frame_rate,nb_read_frames", "v:0", count=True)
    assert theirs == {"codec_name": decoder, "r_frame_rate": "30/1", "nb_read_frames": "30"}


def test_probe_ntsc_rate_is_an_exact_fraction(tmp_path: Path) -> None:
    info = probe(make_video(tmp_path / "ntsc.mp4", fps=NTSC, frames=30))
    assert info.fps == NTSC
    assert info.duration == pytest.approx(30 * 1001 / 30000, abs=1e-9)
    np.testing.assert_allclose(info.times, np.arange(30) * 1001 / 30000, atol=1e-9)


def test_probe_variable_frame_rate_and_start_offset(tmp_path: Path) -> None:
    info = probe(make_video(tmp_path / "vfr.mp4", frames=30, vfr=True, start=0.5))
    expected = frame_times(30, Fraction(30), vfr=True, start=0.5)
    np.testing.assert_allclose(info.times, expected, atol=1e-9)
    assert len(set(np.round(np.diff(info.times), 6))) == 3  # three different frame durations
    with VideoReader(info) as reader:
        frames = list(reader.frames())
    assert [f.time for f in frames] == list(info.times)
    assert [read_index(f.image) for f in frames] == list(range(30))


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_gives_upright_frames(tmp_path: Path, rotation: int) -> None:
    path = make_video(tmp_path / "rot.mp4", width=96, height=64, frames=12, rotation=rotation)
    with av.open(str(path)) as container:  # stored frames really are turned
        stored = container.streams.video[0].codec_context
        assert (stored.width, stored.height) == ((64, 96) if rotation != 180 else (96, 64))
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (96, 64, rotation)
    with VideoReader(info) as reader:
        frames = list(reader.frames())
    assert all(f.image.shape == (64, 96, 3) for f in frames)
    assert [read_index(f.image) for f in frames] == list(range(12))


@pytest.mark.parametrize("kind", ["mp4", "avi", "ts"])
def test_reversed_reading_mirrors_forward_reading(long_videos: dict[str, VideoInfo], kind: str) -> None:
    info = long_videos[kind]
    forward = read_all(info)
    assert forward == [(i, i) for i in range(90)]
    with VideoReader(info) as reader:
        backward = [(f.index, read_index(f.image)) for f in reader.frames_reversed(0, 90, chunk=16)]
        middle = [(f.index, read_index(f.image)) for f in reader.frames_reversed(30, 61, chunk=7)]
    assert backward == forward[::-1]
    assert middle == forward[30:61][::-1]


@pytest.mark.parametrize("kind", ["mp4", "avi", "ts"])
def test_seek_lands_on_the_exact_frame(long_videos: dict[str, VideoInfo], kind: str) -> None:
    info = long_videos[kind]
    with VideoReader(info) as reader:
        # Just before, on and after keyframes (0, 25, 50, 75), and the last frame.
        for start in [1, 24, 25, 26, 49, 51, 74, 76, 89, 45]:
            got = [(f.index, read_index(f.image), f.pts) for f in reader.frames(start, start + 3)]
            stop = min(start + 3, 90)
            assert got == [(i, i, info.pts[i]) for i in range(start, stop)], start


def test_sync_maps_30_and_25_fps_with_offset(tmp_path: Path) -> None:
    a = probe(make_video(tmp_path / "a.mp4", fps=Fraction(30), frames=60))
    b = probe(make_video(tmp_path / "b.mp4", fps=Fraction(25), frames=40))
    a_world, b_world = world_times(a, 0.0), world_times(b, 0.4)
    np.testing.assert_allclose(b_world[:3], [0.4, 0.44, 0.48], atol=1e-9)
    picks = nearest_frames(a_world, b_world)
    # b's frame k is at 0.4 + k/25 s; a's nearest frame is round(30 * that).
    assert picks.tolist() == [min(59, round(30 * (0.4 + k / 25))) for k in range(40)]
    assert picks[:4].tolist() == [12, 13, 14, 16]
    # And the other way: a's frames before b starts all map to b's first frame.
    back = nearest_frames(b_world, a_world)
    assert back[:13].tolist() == [0] * 13 and back[13] == 1


def test_nearest_frames_ties_go_to_the_earlier_frame() -> None:
    ref = np.array([0.0, 1.0, 2.0])
    assert nearest_frames(ref, np.array([0.5, 1.5, -3.0, 9.0, 1.2])).tolist() == [0, 1, 0, 2, 1]
    assert nearest_frames(np.array([5.0]), np.array([0.0, 9.0])).tolist() == [0, 0]


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("ntsc_aac.mp4", {"fps": NTSC, "audio": "aac"}),
        ("vfr_opus.mkv", {"audio": "opus", "vfr": True, "start": 0.5}),
    ],
)
def test_writer_round_trip_keeps_timing_and_audio(tmp_path: Path, name: str, options: dict) -> None:
    source = make_video(tmp_path / name, width=96, height=64, frames=45, **options)
    info = probe(source)
    out = tmp_path / f"out{source.suffix}"
    copy_video(info, VideoWriter.h264(out, info, copy_audio=True))
    assert out.is_file() and not partial_path(out).exists()

    again = probe(out)
    assert (again.width, again.height, again.num_frames, again.fps) == (96, 64, 45, info.fps)
    np.testing.assert_allclose(again.times, info.times, atol=1e-9)
    assert read_all(again) == [(i, i) for i in range(45)]

    (video,) = ffprobe_streams(
        out, "width,height,r_frame_rate,avg_frame_rate,nb_read_frames", "v:0", count=True
    )
    rate = f"{info.fps.numerator}/{info.fps.denominator}"
    assert video == {
        "width": 96,
        "height": 64,
        "r_frame_rate": rate,
        "avg_frame_rate": rate,
        "nb_read_frames": "45",
    }
    assert video_duration(out) == pytest.approx(info.duration, abs=1 / float(info.fps))
    (audio_in,) = ffprobe_streams(source, "codec_name,nb_read_packets", "a", count=True)
    (audio_out,) = ffprobe_streams(out, "codec_name,nb_read_packets", "a", count=True)
    assert audio_out == audio_in and int(audio_in["nb_read_packets"]) > 10


def test_writer_odd_size_and_no_audio_unless_asked(tmp_path: Path) -> None:
    info = probe(make_video(tmp_path / "odd.mp4", width=63, height=47, frames=20, audio=True))
    out = tmp_path / "odd_out.mp4"
    copy_video(info, VideoWriter.h264(out, info))
    again = probe(out)
    assert (again.width, again.height, again.num_frames, again.audio_streams) == (63, 47, 20, 0)
    assert read_all(again) == [(i, i) for i in range(20)]


def test_a_recording_encodes_to_the_same_bytes_every_time(tmp_path: Path) -> None:
    # The hard tier's head camera at half size: x264's AVX-512 kernels encoded it differently on each run
    # (its decoded frames up to 50 levels apart), so a test scene was another scene from run to run.
    first, again = (tier_videos(tmp_path / name, "hard", seconds=1.0, scale=0.5) for name in ("a", "b"))
    for a, b in zip(first.videos, again.videos, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    info = probe(first.videos[0])
    copies = [tmp_path / "copy1.mp4", tmp_path / "copy2.mp4"]
    for out in copies:
        copy_video(info, VideoWriter.h264(out, info))
    assert copies[0].read_bytes() == copies[1].read_bytes()


def test_prores_matte_keeps_alpha(tmp_path: Path) -> None:
    info = probe(make_video(tmp_path / "src.mp4", width=64, height=48, frames=6))
    out = tmp_path / "matte.mov"
    alpha = np.zeros((48, 64), dtype=np.uint8)
    alpha[10:30, 20:50] = 255
    with VideoWriter.prores4444(out, info) as writer:
        for index in range(info.num_frames):
            rgba = np.dstack([np.full((48, 64, 3), 90, np.uint8), alpha])
            writer.write(rgba, index)
    (stream,) = ffprobe_streams(out, "codec_name,profile,pix_fmt,nb_read_frames", "v:0", count=True)
    assert stream["codec_name"] == "prores" and stream["profile"] == "4444"
    assert stream["pix_fmt"].startswith("yuva444p") and stream["nb_read_frames"] == "6"
    with av.open(str(out)) as container:
        decoded = next(container.decode(video=0)).to_ndarray(format="rgba")
    assert np.abs(decoded[..., 3].astype(int) - alpha).max() <= 2


def test_writer_abort_leaves_no_file(tmp_path: Path) -> None:
    info = probe(make_video(tmp_path / "src.mp4", frames=5))
    out = tmp_path / "overlay.mp4"
    with pytest.raises(RuntimeError, match="stop"), VideoWriter.h264(out, info) as writer:
        writer.write(np.zeros((64, 96, 3), np.uint8), 0)
        assert partial_path(out).is_file()
        raise RuntimeError("stop")
    assert not out.exists() and not partial_path(out).exists()


def test_writer_refuses_out_of_order_and_wrong_size(tmp_path: Path) -> None:
    info = probe(make_video(tmp_path / "src.mp4", frames=5))
    with VideoWriter.h264(tmp_path / "o.mp4", info) as writer:
        writer.write(np.zeros((64, 96, 3), np.uint8), 2)
        with pytest.raises(ValueError, match="after frame 2"):
            writer.write(np.zeros((64, 96, 3), np.uint8), 1)
        with pytest.raises(ValueError, match="expected"):
            writer.write(np.zeros((64, 95, 3), np.uint8), 3)
    assert probe(tmp_path / "o.mp4").num_frames == 1


def test_writer_refuses_audio_the_container_cannot_hold(tmp_path: Path) -> None:
    info = probe(make_video(tmp_path / "src.mkv", frames=5, audio="opus"))
    out = tmp_path / "out.mov"  # MOV cannot carry Opus
    with pytest.raises(VggtsError, match="with the input's audio"):
        VideoWriter.h264(out, info, copy_audio=True)
    assert not out.exists() and not partial_path(out).exists()


def test_reader_reports_data_that_ends_early(tmp_path: Path) -> None:
    """A file cut after probing (index first, so it still opens) stops decoding with one line."""
    source = make_video(tmp_path / "src.mp4", frames=60)
    path = tmp_path / "indexed.mp4"
    with (
        av.open(str(source)) as src,
        av.open(str(path), "w", container_options={"movflags": "faststart"}) as dst,
    ):
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    info = probe(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(VggtsError) as caught, VideoReader(info) as reader:
        for _ in reader.frames():
            pass
    assert "of 60" in str(caught.value) and "\n" not in str(caught.value)


def _text_as_mp4(folder: Path) -> Path:
    path = folder / "notes.mp4"
    path.write_text("not a video\n" * 50)
    return path


def _half_of(path: Path) -> Path:
    data = path.read_bytes()
    cut = path.with_name(f"cut{path.suffix}")
    cut.write_bytes(data[: len(data) // 2])
    return cut


def _audio_only(folder: Path) -> Path:
    source = make_video(folder / "with_audio.mp4", frames=15, audio=True)
    path = folder / "audio.m4a"
    with av.open(str(source)) as src, av.open(str(path), "w") as dst:
        out = dst.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(audio=0):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.mp4", "no such file"),
        (lambda d: d, "is a folder, not a file"),
        (_text_as_mp4, "not a readable media file"),
        (lambda d: _half_of(make_video(d / "v.mp4", frames=60)), "not a readable media file"),
        (lambda d: _half_of(make_video(d / "v.mkv", frames=60)), "truncated"),
        (_audio_only, "no video stream"),
    ],
    ids=["missing", "folder", "text", "half-mp4", "half-mkv", "audio-only"],
)
def test_bad_inputs_fail_with_one_line(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(VggtsError) as caught:
        probe(path)
    text = str(caught.value)
    assert message in text and path.name in text and "\n" not in text
