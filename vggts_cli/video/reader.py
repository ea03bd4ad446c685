"""Video decoding with exact timestamps.

`probe` demuxes a file once (no full decode) to build its frame table: every frame's presentation
timestamp, in presentation order. `VideoReader` then streams decoded RGB frames forward from any frame,
or backward in chunks, naming each frame by its place in that table so that seeks land exactly.
Memory is bounded by one decoded frame (forward) or one chunk (backward), never by the video's length.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vggts_cli.errors import VggtsError
from vggts_cli.fsutil import not_a_file


@dataclass(frozen=True, eq=False)
class VideoInfo:
    """What `probe` learns about a video file; frame `i` is shown at `times[i]` seconds."""

    path: Path
    width: int  # display size, rotation applied
    height: int
    rotation: int  # clockwise degrees (0/90/180/270) to turn a decoded frame upright
    fps: Fraction  # average frame rate, exact
    time_base: Fraction
    num_frames: int
    duration: float  # seconds, first frame shown to last frame gone
    pts: np.ndarray  # (num_frames,) int64, in time_base units, presentation order
    times: np.ndarray  # (num_frames,) float64 seconds = pts * time_base
    audio_streams: int
    codec: str
    # AVI stores no presentation timestamps: `pts` is then its frame clock (each stored frame's place, a
    # dropped frame leaving a gap), a decoded frame is placed by counting from the keyframe a decode
    # started at, and FFmpeg's guessed frame pts run `pts_shift` ahead of the table.
    counted: bool = False
    pts_shift: int = 0
    digest: str = ""  # sha256 of every packet of every stream, in file order (what `--resume` compares)


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame in display orientation."""

    index: int
    pts: int
    time: float
    image: np.ndarray  # (H, W, 3) uint8 RGB


def ffmpeg_reason(err: Exception) -> str:
    """FFmpeg's own words for a failure, on one line, without the file name it repeats."""
    text = getattr(err, "strerror", None) or str(err)
    return " ".join(str(text).split())


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError) as err:
        why = ffmpeg_reason(err)
        raise VggtsError(f"{path}: not a readable media file ({why}); is it a complete video?") from None


def _clockwise(frame: av.VideoFrame) -> int:
    """FFmpeg's display matrix turns counterclockwise; we store the clockwise turn, snapped to 90°."""
    return (-round(frame.rotation / 90) * 90) % 360


def probe(path: Path) -> VideoInfo:
    """Read the frame table of the first video stream of `path`; decodes only its first frame.

    Raises VggtsError (one line) for a missing, unreadable, truncated or frameless file.
    """
    path = Path(path)
    if not path.is_file():
        raise VggtsError(f"{path}: {not_a_file(path)}")
    with _open(path) as container:
        if not container.streams.video:
            raise VggtsError(f"{path}: no video stream (found only {_stream_kinds(container)})")
        return _scan(path, container, container.streams.video[0])


def _stream_kinds(container: av.container.InputContainer) -> str:
    return ", ".join(s.type for s in container.streams) or "nothing"


@dataclass
class _Demuxed:
    """What one pass over the packets finds: the video's stamps (pts, else dts; AVI: dts) and durations in
    stream order, the frame count the header promised less discarded frames, where the last packet of any
    stream ends (seconds), the first decodable frame, whether frames are placed by counting (AVI) and the
    first packet's pts - dts there, and the sha256 of every packet."""

    stamps: list[int | None]
    durations: list[int]
    expected: int
    end: float
    first: av.VideoFrame
    counted: bool
    pts_shift: int
    digest: str


def _demux(path: Path, container: av.container.InputContainer, stream: av.VideoStream) -> _Demuxed:
    """Demux every packet once; fails on a corrupt, empty, undecodable or truncated stream."""
    # AVI's packets carry only their place on the frame clock (dts); FFmpeg guesses a pts from it.
    counted = container.format.name == "avi"
    stamps: list[int | None] = []
    durations: list[int] = []
    pts_shift = 0
    expected = stream.frames  # sample count from the header, 0 where the container has none
    end = 0.0  # seconds: where the last packet of any stream ends
    first: av.VideoFrame | None = None
    content = hashlib.sha256()  # the packets are read here anyway: hashing them costs no second read
    try:
        for packet in container.demux():
            if packet.size == 0:  # end-of-stream marker
                continue
            content.update(packet.stream.index.to_bytes(4, "little"))
            content.update(packet)
            if packet.is_corrupt:
                raise VggtsError(
                    f"{path}: truncated or corrupt (damaged packet in {packet.stream.type} stream)"
                )
            stamp = packet.dts if counted or packet.pts is None else packet.pts
            if stamp is not None and packet.time_base is not None:
                end = max(end, float((stamp + packet.duration) * packet.time_base))
            if packet.stream.index != stream.index:
                continue
            if first is None:
                first = next(iter(packet.decode()), None)
            if packet.is_discard:  # before an edit list's start: decoded, never shown
                expected -= 1
                continue
            if counted and not stamps and None not in (packet.pts, packet.dts):
                pts_shift = packet.pts - packet.dts
            stamps.append(stamp)
            durations.append(packet.duration)
        if first is None and stamps:
            first = next(iter(stream.decode(None)), None)
    except av.FFmpegError as err:
        raise VggtsError(f"{path}: truncated or corrupt ({ffmpeg_reason(err)})") from None
    if not stamps:
        raise VggtsError(f"{path}: the video stream has no frames")
    if first is None:
        raise VggtsError(f"{path}: no frame of the {stream.codec_context.name} video stream could be decoded")
    if counted and None not in stamps:
        # AVI marks a dropped frame (the one before stays on screen) with an empty chunk, which the
        # header counts and the demuxer skips: a gap in the frame clock, not a missing frame.
        expected -= int(np.sum(np.diff(np.asarray(stamps, dtype=np.int64)) - 1))
    if 0 < len(stamps) < expected:
        raise VggtsError(f"{path}: truncated (only {len(stamps)} of {expected} frames present)")
    return _Demuxed(stamps, durations, expected, end, first, counted, pts_shift, content.hexdigest())


def _scan(path: Path, container: av.container.InputContainer, stream: av.VideoStream) -> VideoInfo:
    """Demux every packet once: video timestamps, the end of the longest stream, and the first frame."""
    demuxed = _demux(path, container, stream)
    stamps, durations, end, first = demuxed.stamps, demuxed.durations, demuxed.end, demuxed.first
    time_base = stream.time_base
    fps = stream.average_rate or stream.guessed_rate
    pts = _frame_table(path, stamps, fps, time_base)
    # The last frame lasts as its packet says, else one frame period.
    tail = max(zip(stamps, durations, strict=True))[1] if None not in stamps else 0
    tail = tail or (round(1 / (fps * time_base)) if fps else 0)
    duration = float((int(pts[-1]) - int(pts[0]) + tail) * time_base)
    if not fps:
        fps = Fraction(len(pts), 1) / Fraction(duration).limit_denominator(1_000_000)
    _check_complete(path, container, end, duration / len(pts))

    rotation = _clockwise(first)
    width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        rotation=rotation,
        fps=Fraction(fps),
        time_base=Fraction(time_base),
        num_frames=len(pts),
        duration=duration,
        pts=pts,
        times=pts.astype(np.float64) * float(time_base),
        audio_streams=len(container.streams.audio),
        codec=stream.codec_context.name,
        counted=demuxed.counted,
        pts_shift=demuxed.pts_shift,
        digest=demuxed.digest,
    )


def _frame_table(
    path: Path, stamps: list[int | None], fps: Fraction | None, time_base: Fraction
) -> np.ndarray:
    """Sorted presentation timestamps; a stream without usable ones gets an even grid at its frame rate."""
    if None not in stamps:
        pts = np.sort(np.asarray(stamps, dtype=np.int64))
        if len(pts) < 2 or np.all(np.diff(pts) > 0):
            return pts
    if not fps:
        raise VggtsError(f"{path}: the video stream has neither timestamps nor a frame rate")
    step = 1 / (Fraction(fps) * Fraction(time_base))
    return np.array([round(i * step) for i in range(len(stamps))], dtype=np.int64)


def _check_complete(path: Path, container: av.container.InputContainer, end: float, frame_s: float) -> None:
    """A file cut short ends well before the duration its header announced (e.g. Matroska, WebM).

    `end` counts from time 0, as the announced duration does in Matroska and MP4 with an offset start;
    where it counts from the first timestamp instead (MPEG-TS), the test is only more lenient.
    """
    if container.duration is None:
        return
    announced = container.duration / av.time_base
    # Generous margin: headers round, and streams may end a little apart; a cut file misses far more.
    if end < 0.9 * announced - 2 * frame_s:
        raise VggtsError(f"{path}: truncated (data ends at {end:.2f} s of {announced:.2f} s)")


def frame_range(info: VideoInfo, start: int, stop: int | None) -> tuple[int, int]:
    """Validated bounds of a camera's frames; like a slice, a `stop` past the end means the end."""
    n = info.num_frames
    stop = n if stop is None else min(stop, n)
    if not 0 <= start <= n or stop < 0:
        raise IndexError(f"frame range {start}:{stop} outside 0:{n} of {info.path}")
    return start, stop


class VideoReader:
    """Decodes frames of a probed video (context manager). One iteration at a time per reader."""

    def __init__(self, info: VideoInfo):
        self.info = info
        self._open()

    def _open(self) -> None:
        self._container = _open(self.info.path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._at_start = True  # nothing demuxed yet: the next packet is the stream's first

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
        """Frames start..stop-1 in order, decoded from the keyframe at or before `start`."""
        start, stop = frame_range(self.info, start, stop)
        if start >= stop:
            return
        following = start
        for index, frame in self._decode(start):
            if index >= stop:
                return
            if index >= start:
                yield self._to_frame(index, frame)
                following = index + 1
        if following < stop:  # the data ran out before the frame table did
            raise VggtsError(
                f"{self.info.path}: video ends at frame {following} of {self.info.num_frames} "
                "(file truncated or changed since it was probed?)"
            )

    def frames_reversed(self, start: int = 0, stop: int | None = None, chunk: int = 32) -> Iterator[Frame]:
        """Frames stop-1 down to start: each chunk of `chunk` frames is decoded forward, then reversed."""
        start, stop = frame_range(self.info, start, stop)
        for hi in range(stop, start, -chunk):
            block = list(self.frames(max(start, hi - chunk), hi))
            yield from reversed(block)

    def _decode(self, start: int) -> Iterator[tuple[int, av.VideoFrame]]:
        """(index, frame) from a keyframe at or before frame `start` to the end.

        A seek lands on a keyframe chosen by the demuxer's own index (often by decode time, MPEG-TS
        by bisecting the file), which can lie after `start`; then seek again further back, ending at
        the stream's start.
        """
        back = 0
        while True:
            from_start = self._position(max(0, start - back))
            decoded = self._decode_on(from_start)
            first = next(decoded, None)
            if first is None:
                return
            if from_start or 0 <= first[0] <= start:
                yield first
                yield from decoded
                return
            decoded.close()
            back = start if first[0] < 0 else max(16, 2 * back)

    def _position(self, target: int) -> bool:
        """Put the demuxer at a keyframe at or before frame `target`; True if that is the stream's start.

        The start is reached by opening the file afresh: seeking to the first timestamp is not exact
        in every container, and raw streams cannot seek at all.
        """
        if target > 0:
            try:
                self._container.seek(int(self.info.pts[target]), stream=self._stream, backward=True)
                self._at_start = False
                return False
            except av.FFmpegError:
                pass  # not seekable: decode from the start instead
        if not self._at_start:
            self._container.close()
            self._open()
        return True

    def _decode_on(self, from_start: bool) -> Iterator[tuple[int, av.VideoFrame]]:
        """Decode from the current position; an index is -1 where it cannot be known."""
        table, counted, shift = self.info.pts, self.info.counted, self.info.pts_shift
        self._at_start = False
        # From the stream's start, a frame without a known timestamp still has a known place.
        previous = -1 if from_start else None
        try:
            for packet in self._container.demux(self._stream):
                for frame in packet.decode():
                    if counted and previous is not None:
                        # AVI: frames come out in display order; their guessed pts are no guide once
                        # B-frames reorder them, so the first frame of a decode is placed and the rest count.
                        yield previous + 1, frame
                        previous += 1
                        continue
                    pts = None if frame.pts is None else frame.pts - shift
                    index = -1 if pts is None else int(np.searchsorted(table, pts))
                    if index >= len(table) or (index >= 0 and table[index] != pts):
                        index = -1
                    # Timestamps that are missing or go backwards: count on.
                    if previous is not None and index <= previous:
                        index = previous + 1
                    previous = index if index >= 0 else previous
                    yield index, frame
        except av.FFmpegError as err:
            near = "?" if previous is None else previous + 1
            raise VggtsError(
                f"{self.info.path}: decode error near frame {near} ({ffmpeg_reason(err)})"
            ) from None

    def _to_frame(self, index: int, frame: av.VideoFrame) -> Frame:
        image = frame.to_ndarray(format="rgb24")
        if self.info.rotation:
            image = np.ascontiguousarray(np.rot90(image, k=-self.info.rotation // 90))
        return Frame(
            index=index, pts=int(self.info.pts[index]), time=float(self.info.times[index]), image=image
        )
