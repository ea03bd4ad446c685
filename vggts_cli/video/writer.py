"""Video encoding that reproduces an input's timing: every frame carries the input frame's own timestamp.

Frame count, frame rate (as a fraction), variable frame timing, start offset and size therefore match
the input exactly; audio streams can be copied packet for packet (or re-encoded as AAC where an MP4 cannot
hold them, e.g. the PCM of an AVI). Output goes to a partial file that is renamed into place only when
complete (see vggts_cli/fsutil.py).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vggts_cli.errors import VggtsError, printable
from vggts_cli.fsutil import PartialOutput, disk_refused
from vggts_cli.video.reader import VideoInfo, ffmpeg_reason

# Audio codecs that an MP4 holds and players play there; any other (PCM, ADPCM, G.711 …) is re-encoded.
MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"})
# The layout a channel count usually means: the AAC encoder wants one named.
_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def notice(line: str) -> None:
    """One line on stderr about an output that differs from what was asked for."""
    print(f"vggts: note: {printable(line)}", file=sys.stderr, flush=True)


def _failure(path: Path, what: str, err: Exception) -> Exception:
    """What to raise for FFmpeg's `err`: a write the disk refused (full, read-only) as it is, for the job to
    report (fsutil.writing_under); anything else as one line naming the file and what failed."""
    return err if disk_refused(err) else VggtsError(f"{path}: {what} ({ffmpeg_reason(err)})")


def _fit_pix_fmt(pix_fmt: str, width: int, height: int) -> str:
    """Chroma-subsampled formats need even sizes; an odd size keeps full chroma instead of padding."""
    if (width % 2 or height % 2) and pix_fmt.startswith(("yuv420p", "yuv422p")):
        return "yuv444p" + pix_fmt[len("yuv420p") :]
    return pix_fmt


def x264_options(crf: int, preset: str) -> dict[str, str]:
    """libx264 options for `crf` and `preset` under which the same frames encode to the same bytes.

    x264's AVX-512 kernels gave run-to-run differences in P-frames here (seen with FFmpeg 8.1 in av 18 on an
    AVX-512 CPU, up to 50 levels in a decoded pixel at the medium preset; the AVX2 kernels and plain C do
    not), and a resumed or retried job must rewrite byte-identical files, a rendered test recording be the
    same recording every time. So on such a CPU x264 is held to AVX2, which it also has.
    """
    params = ["log-level=error", "asm=AVX2"] if _avx512() else ["log-level=error"]
    return {"crf": str(crf), "preset": preset, "x264-params": ":".join(params)}


@functools.cache
def _avx512() -> bool:
    """Whether this CPU has AVX-512 (and AVX2): read once, every encoder asks."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512f" in flags and "avx2" in flags


def _quiet(codec: str, options: dict[str, str]) -> dict[str, str]:
    """libx265 prints its banner and statistics itself, past FFmpeg's log level."""
    if codec in ("libx265", "hevc") and "x265-params" not in options:
        return {**options, "x265-params": "log-level=error"}
    return options


class VideoWriter:
    """Encodes frames with the timing of the video `like` (context manager: close on success, else abort).

    Frames must be written in increasing index order; frame `index` is shown at `like.times[index]`.
    """

    def __init__(
        self,
        path: Path,
        like: VideoInfo,
        *,
        codec: str = "libx264",
        pix_fmt: str = "yuv420p",
        options: dict[str, str] | None = None,
        copy_audio: bool = False,
    ):
        self.path = Path(path)
        self.like = like
        self._last_index = -1
        self._output = PartialOutput(self.path)
        self._output.path.parent.mkdir(parents=True, exist_ok=True)
        self._source: av.container.InputContainer | None = None
        self._audio: Iterator[av.Packet] = iter(())
        self._pending: av.Packet | None = None
        self._outputs: dict[int, av.AudioStream] = {}
        self._encoded: set[int] = set()  # input audio streams re-encoded rather than copied
        self._finished = False
        try:
            # MP4/MOV place a delayed start with an edit list counted in the movie timescale (default
            # 1/1000 s); the input's clock keeps it exact. Other muxers ignore the option.
            timescale = {"movie_timescale": str(Fraction(like.time_base).denominator)}
            self._container = av.open(str(self._output.path), "w", container_options=timescale)
        except (av.FFmpegError, ValueError) as err:
            raise _failure(self.path, "cannot create this kind of file", err) from None
        try:
            stream = self._container.add_stream(codec, rate=like.fps, options=_quiet(codec, options or {}))
            stream.width, stream.height = like.width, like.height
            stream.pix_fmt = _fit_pix_fmt(pix_fmt, like.width, like.height)
            # The encoder keeps the input's clock: at 1/fps it would round VFR timestamps onto a grid.
            stream.time_base = stream.codec_context.time_base = like.time_base
            self._stream = stream
            if copy_audio and like.audio_streams:
                self._open_audio()
            self._container.start_encoding()
        except (av.FFmpegError, ValueError) as err:
            self.abort()
            what = f"{codec} video" + (" with the input's audio" if copy_audio else "")
            raise _failure(self.path, f"cannot write {what}", err) from None
        except BaseException:
            self.abort()
            raise

    @classmethod
    def h264(cls, path: Path, like: VideoInfo, *, copy_audio: bool = False) -> VideoWriter:
        """H.264 for viewing (overlay, redacted): near-transparent quality, fast to encode."""
        options = x264_options(crf=18, preset="veryfast")
        return cls(path, like, codec="libx264", pix_fmt="yuv420p", options=options, copy_audio=copy_audio)

    @classmethod
    def prores4444(cls, path: Path, like: VideoInfo) -> VideoWriter:
        """ProRes 4444 with alpha, for a .mov matte that editing software composites directly."""
        return cls(path, like, codec="prores_ks", pix_fmt="yuva444p10le", options={"profile": "4"})

    def _open_audio(self) -> None:
        """Add every audio stream of the input, copied, or re-encoded as AAC where the container cannot
        hold it (with one note on stderr); its packets are muxed as the video advances."""
        self._source = av.open(str(self.like.path), metadata_errors="ignore")
        copyable = MP4_AUDIO if self._container.format.name == "mp4" else None
        encoded = []
        for s in self._source.streams.audio:
            name = s.codec_context.codec.canonical_name  # the format's name: mp3, not decoder mp3float
            if copyable is None or name in copyable:
                self._outputs[s.index] = self._container.add_stream_from_template(s)
                continue
            channels = s.codec_context.channels
            if channels not in _LAYOUTS:
                raise VggtsError(f"{self.path}: cannot re-encode the {channels}-channel {name} audio as AAC")
            # Decoded with the layout the encoder gets, where the input names none (AVI: "2 channels").
            s.codec_context.layout = _LAYOUTS[channels]
            aac = self._container.add_stream("aac", rate=s.codec_context.sample_rate)
            aac.codec_context.layout = _LAYOUTS[channels]
            aac.codec_context.bit_rate = min(96_000 * channels, 512_000)
            self._outputs[s.index] = aac
            self._encoded.add(s.index)
            encoded.append(f"stream {s.index} ({name})")
        if encoded:
            notice(
                f"{self.path}: audio {', '.join(encoded)} re-encoded as AAC: "
                f"{self._container.format.name.upper()} cannot hold it"
            )
        self._audio = self._audio_packets()
        self._pending = next(self._audio, None)

    def _audio_packets(self) -> Iterator[av.Packet]:
        """The output's audio packets in the input's order: copies, and AAC for streams being re-encoded."""
        assert self._source is not None
        for packet in self._source.demux(*self._source.streams.audio):
            out = self._outputs[packet.stream.index]
            if packet.stream.index in self._encoded:
                for frame in packet.decode():  # the empty end-of-stream packet flushes the decoder
                    yield from out.encode(frame)
            elif packet.dts is not None:  # skips end-of-stream markers and packets the muxer cannot place
                packet.stream = out
                yield packet
        for index in sorted(self._encoded):
            yield from self._outputs[index].encode(None)

    def _mux_audio(self, until: float | None) -> None:
        """Mux audio packets that start before `until` seconds (all that remain when None)."""
        while self._pending is not None:
            packet = self._pending
            if until is not None and packet.dts is not None and float(packet.dts * packet.time_base) > until:
                return
            self._pending = next(self._audio, None)
            self._container.mux(packet)

    def write(self, image: np.ndarray, index: int) -> None:
        """Encode `image` ((H, W, 3) RGB or (H, W, 4) RGBA uint8, display size) as frame `index` of `like`."""
        if index <= self._last_index or index >= self.like.num_frames:
            raise ValueError(f"frame {index} written after frame {self._last_index} or past the end")
        shape = (self.like.height, self.like.width)
        if (
            image.dtype != np.uint8
            or image.ndim != 3
            or image.shape[:2] != shape
            or image.shape[2] not in (3, 4)
        ):
            raise ValueError(f"expected ({shape[0]}, {shape[1]}, 3|4) uint8, got {image.shape} {image.dtype}")
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(image), format="rgb24" if image.shape[2] == 3 else "rgba"
        )
        frame.pts = int(self.like.pts[index])
        frame.time_base = self.like.time_base
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self._mux_audio(float(self.like.times[index]))
        except av.FFmpegError as err:
            raise _failure(self.path, f"encoding frame {index} failed", err) from None
        self._last_index = index

    def close(self) -> None:
        """Finish the file and move it into place."""
        self.finish()
        self.commit()

    def finish(self) -> None:
        """Flush the encoder, mux the remaining audio and complete the file, still under its partial name."""
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._mux_audio(None)
            self._container.close()
        except av.FFmpegError as err:
            self.abort()
            raise _failure(self.path, "finishing the video failed", err) from None
        except BaseException:
            self.abort()
            raise
        self._finished = True
        self._close_source()

    def commit(self) -> None:
        """Move the finished file to its final name."""
        if not self._finished:
            raise RuntimeError(f"{self.path}: commit before finish")
        self._output.commit()

    def abort(self) -> None:
        """Stop writing and remove the partial file (also a finished one not yet committed)."""
        try:
            if not self._finished:
                self._container.close()
        except av.FFmpegError:
            pass  # an unfinished file is removed below anyway
        self._close_source()
        self._output.discard()

    def _close_source(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
