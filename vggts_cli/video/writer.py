"""Video encoding that reproduces an input's timing: every frame carries the input frame's own timestamp.

Frame count, frame rate (as a fraction), variable frame timing, start offset and size therefore match
the input exactly; audio streams can be copied packet for packet. Output goes to a partial file that is
renamed into place only when complete (see vggts_cli/fsutil.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vggts_cli.errors import VggtsError
from vggts_cli.fsutil import PartialOutput
from vggts_cli.video.reader import VideoInfo, ffmpeg_reason


def _fit_pix_fmt(pix_fmt: str, width: int, height: int) -> str:
    """Chroma-subsampled formats need even sizes; an odd size keeps full chroma instead of padding."""
    if (width % 2 or height % 2) and pix_fmt.startswith(("yuv420p", "yuv422p")):
        return "yuv444p" + pix_fmt[len("yuv420p") :]
    return pix_fmt


def _x264_reproducible() -> dict[str, str]:
    """x264 options that make the same frames encode to the same bytes.

    x264's AVX-512 kernels gave run-to-run differences in the bottom rows of P-frames here (seen with
    FFmpeg 8.1 in av 18 on an AVX-512 CPU; the AVX2 kernels and plain C do not), and a resumed or retried
    job must rewrite byte-identical files. So on such a CPU x264 is held to AVX2, which it also has.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return {}
    return {"x264-params": "asm=AVX2"} if "avx512f" in flags and "avx2" in flags else {}


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
        try:
            # MP4/MOV place a delayed start with an edit list counted in the movie timescale (default
            # 1/1000 s); the input's clock keeps it exact. Other muxers ignore the option.
            timescale = {"movie_timescale": str(Fraction(like.time_base).denominator)}
            self._container = av.open(str(self._output.path), "w", container_options=timescale)
        except (av.FFmpegError, ValueError) as err:
            raise VggtsError(f"{self.path}: cannot create this kind of file ({ffmpeg_reason(err)})") from None
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
            raise VggtsError(f"{self.path}: cannot write {what} ({ffmpeg_reason(err)})") from None

    @classmethod
    def h264(cls, path: Path, like: VideoInfo, *, copy_audio: bool = False) -> VideoWriter:
        """H.264 for viewing (overlay, redacted): near-transparent quality, fast to encode."""
        options = {"crf": "18", "preset": "veryfast", **_x264_reproducible()}
        return cls(path, like, codec="libx264", pix_fmt="yuv420p", options=options, copy_audio=copy_audio)

    @classmethod
    def prores4444(cls, path: Path, like: VideoInfo) -> VideoWriter:
        """ProRes 4444 with alpha, for a .mov matte that editing software composites directly."""
        return cls(path, like, codec="prores_ks", pix_fmt="yuva444p10le", options={"profile": "4"})

    def _open_audio(self) -> None:
        """Add a copy of every audio stream of the input; its packets are muxed as the video advances."""
        self._source = av.open(str(self.like.path), metadata_errors="ignore")
        self._outputs = {
            s.index: self._container.add_stream_from_template(s) for s in self._source.streams.audio
        }
        self._audio = self._source.demux(*self._source.streams.audio)
        self._pending = next(self._audio, None)

    def _mux_audio(self, until: float | None) -> None:
        """Copy audio packets that start before `until` seconds (all that remain when None)."""
        while self._pending is not None:
            packet = self._pending
            if until is not None and packet.dts is not None and float(packet.dts * packet.time_base) > until:
                return
            self._pending = next(self._audio, None)
            if packet.dts is None:  # end-of-stream markers and packets the muxer cannot place
                continue
            packet.stream = self._outputs[packet.stream.index]
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
            raise VggtsError(f"{self.path}: encoding frame {index} failed ({ffmpeg_reason(err)})") from None
        self._last_index = index

    def close(self) -> None:
        """Flush the encoder, copy the remaining audio and move the finished file into place."""
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._mux_audio(None)
            self._container.close()
        except av.FFmpegError as err:
            self.abort()
            raise VggtsError(f"{self.path}: finishing the video failed ({ffmpeg_reason(err)})") from None
        self._close_source()
        self._output.commit()

    def abort(self) -> None:
        """Stop writing and remove the partial file."""
        try:
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
