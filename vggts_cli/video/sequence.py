"""Image sequences as cameras: a folder of frames, a printf pattern (`plate/%04d.png`) or a glob
(`frames/*.jpg`).

`probe_sequence` lists the frames and reads every file once: for the sha256 that `--resume` compares, and
for each frame's size, from its header (a file whose header is not understood is decoded instead). Frame
`i` is shown at `i / fps` seconds. `SequenceReader` decodes frames with the interface of `VideoReader`,
as (H, W, 3) uint8 RGB like a video's frames:

- 8-bit PNG, JPEG and TIFF as stored; 16-bit PNG and TIFF scaled to 8 bits (v * 255 / 65535, rounded);
- float samples (EXR, 32-bit float TIFF) are linear light: clipped to [0, 1], then encoded with the sRGB
  transfer curve (NaN as 0);
- grey becomes three equal channels, alpha is dropped, and EXIF/TIFF orientation is not applied.

EXR is decoded by FFmpeg's EXR decoder (through PyAV), which every install has: the OpenCV wheels here are
built without OpenEXR, and builds with it read EXR only when OPENCV_IO_ENABLE_OPENEXR is set before cv2 is
imported. The frame is the header's display window.
"""

from __future__ import annotations

import glob
import hashlib
import io
import math
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from vggts_cli.errors import UsageError, VggtsError
from vggts_cli.video.reader import Frame, VideoInfo, ffmpeg_reason, frame_range

# Frame files by suffix (lower case) and the format each names.
FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".exr": "exr", ".tif": "tiff", ".tiff": "tiff"}
IMAGE_SUFFIXES = tuple(FORMATS)
DEFAULT_FPS = Fraction(25)
MAX_FPS = 10_000
FPS_HELP = "e.g. 25, 23.976 or 24000/1001"

_PRINTF = re.compile(r"%(0?\d*)d")  # %d, %04d (FFmpeg's image2 patterns)
_MAGIC = re.compile(r"[*?[]")  # glob
# Keep the depth (16-bit, float) and drop alpha; take the pixels as stored.
_IMREAD = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR | cv2.IMREAD_IGNORE_ORIENTATION


@dataclass(frozen=True, eq=False)
class SequenceInfo(VideoInfo):
    """A probed image sequence: `path` is the folder or pattern given, `files` its frames in order."""

    files: tuple[Path, ...] = ()


def parse_fps(value: object, option: str = "--fps") -> Fraction:
    """A frame rate as an exact fraction ("25", "23.976", "24000/1001"); one-line UsageError otherwise."""
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError
        fps = Fraction(str(value).strip()).limit_denominator(100_000)
        if not 0 < fps <= MAX_FPS:
            raise ValueError
    except (ValueError, ZeroDivisionError):
        raise UsageError(
            f"{option} takes a frame rate above 0 and at most {MAX_FPS} ({FPS_HELP}), got {str(value)!r}"
        ) from None
    return fps


def is_sequence(path: Path) -> bool:
    """Whether `path` names an image sequence (a folder, a printf pattern, a glob) rather than a file."""
    path = Path(path)
    if path.is_dir():
        return True
    if path.exists():
        return False  # a file, whatever its name holds
    return _PRINTF.search(path.name) is not None or _MAGIC.search(str(path)) is not None


def sequence_name(path: Path) -> str:
    """A camera name for the sequence at `path`: the name of its folder (`plate/%04d.png` -> plate)."""
    path = Path(path)
    folder = (path if path.is_dir() else path.parent).resolve()
    while _MAGIC.search(folder.name) and folder != folder.parent:
        folder = folder.parent
    return folder.name or "sequence"


def probe_sequence(path: Path, fps: Fraction = DEFAULT_FPS) -> SequenceInfo:
    """List and check the frames of the sequence at `path`, shown `fps` frames a second.

    Raises VggtsError (one line) for an empty folder, a pattern that matches nothing, a gap in a numbered
    sequence, an unreadable frame or frames of different sizes.
    """
    path = Path(path)
    fps = parse_fps(fps)
    files = _frame_files(path)
    content = hashlib.sha256()  # each file's length and bytes: the same frames in the same order
    size: tuple[int, int] | None = None
    for file in files:
        data = _read(file)
        content.update(len(data).to_bytes(8, "little"))
        content.update(data)
        found = _header_size(data) or _decoded_size(file, data)
        if size is None:
            size = found
        elif found != size:
            raise VggtsError(
                f"{file}: {found[0]}x{found[1]}, but {files[0].name} is {size[0]}x{size[1]}; "
                "every frame of a sequence must have the same size"
            )
    assert size is not None
    n = len(files)
    pts = np.arange(n, dtype=np.int64)
    return SequenceInfo(
        path=path,
        width=size[0],
        height=size[1],
        rotation=0,
        fps=fps,
        time_base=1 / fps,
        num_frames=n,
        duration=float(n / fps),
        pts=pts,
        times=pts * fps.denominator / fps.numerator,  # i / fps, rounded once
        audio_streams=0,
        codec="+".join(sorted({FORMATS[f.suffix.lower()] for f in files})) + " sequence",
        digest=content.hexdigest(),
        files=tuple(files),
    )


def _kinds() -> str:
    return ", ".join(IMAGE_SUFFIXES)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in FORMATS and not path.name.startswith(".") and path.is_file()


def _natural(path: Path) -> tuple[list, str]:
    """Sort key: digit runs by value (frame2 before frame10), the rest case-folded."""
    text = str(path)
    return [int(t) if t.isdigit() else t.casefold() for t in re.split(r"(\d+)", text)], text


def _frame_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if _is_image(p)), key=_natural)
        if not files:
            raise VggtsError(f"{path}: no image files ({_kinds()}) in this folder")
        return files
    spec = _PRINTF.search(path.name)
    if spec is not None:
        return _numbered(path, spec)
    files = sorted((Path(p) for p in glob.glob(str(path)) if _is_image(Path(p))), key=_natural)
    if not files:
        raise VggtsError(f"{path}: no image file ({_kinds()}) matches this pattern")
    return files


def _numbered(path: Path, spec: re.Match) -> list[Path]:
    """The files of a printf pattern, by number; the numbers may start anywhere but must be contiguous."""
    head, tail = path.name[: spec.start()], path.name[spec.end() :]
    if not tail.lower().endswith(IMAGE_SUFFIXES) or _PRINTF.search(tail):
        raise VggtsError(f"{path}: a frame pattern names one number and an image suffix ({_kinds()})")
    folder = path.parent
    if not folder.is_dir():
        raise VggtsError(f"{path}: no such folder {folder}")
    number = re.compile(re.escape(head) + r"( *\d+)" + re.escape(tail))
    found: dict[int, Path] = {}
    for p in folder.iterdir():
        match = number.fullmatch(p.name)
        # Only numbers that the pattern prints back the same way: %04d takes 0007, not 07 or 7.
        if match and spec.group() % int(match.group(1)) == match.group(1) and p.is_file():
            found[int(match.group(1))] = p
    if not found:
        raise VggtsError(f"{path}: no file matches this pattern")
    first, last = min(found), max(found)
    for n in range(first, last + 1):
        if n not in found:
            missing = folder / f"{head}{spec.group() % n}{tail}"
            raise VggtsError(
                f"{missing}: missing; the frames of {path} run from {found[first].name} to "
                f"{found[last].name} and must have no gap"
            )
    return [found[n] for n in range(first, last + 1)]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise VggtsError(f"{path}: cannot read ({err.strerror or err})") from None


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, TIFF or EXR header; None where it is not understood."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
        if data[:4] == b"\x76\x2f\x31\x01":
            return _exr_size(data)
    except (struct.error, ValueError, IndexError):
        pass
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """From the first start-of-frame segment (SOF0..SOF15 but DHT, JPG, DAC)."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """ImageWidth and ImageLength of the first image file directory."""
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", data[4:8])[0]
    (entries,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    found = {}
    for k in range(entries):
        at = ifd + 2 + 12 * k
        tag, kind = struct.unpack(order + "HH", data[at : at + 4])
        if tag in (256, 257) and kind in (3, 4):  # SHORT or LONG
            fmt, width = ("H", 2) if kind == 3 else ("I", 4)
            found[tag] = struct.unpack(order + fmt, data[at + 8 : at + 8 + width])[0]
    return (found[256], found[257]) if len(found) == 2 else None


def _exr_size(data: bytes) -> tuple[int, int] | None:
    """The displayWindow attribute: the size FFmpeg's decoder gives a frame."""
    i = 8  # past the magic number and the version
    while data[i] != 0:
        name_end = data.index(b"\0", i)
        type_end = data.index(b"\0", name_end + 1)
        (length,) = struct.unpack("<i", data[type_end + 1 : type_end + 5])
        value = type_end + 5
        if data[i:name_end] == b"displayWindow" and data[name_end + 1 : type_end] == b"box2i":
            x0, y0, x1, y1 = struct.unpack("<4i", data[value : value + 16])
            return x1 - x0 + 1, y1 - y0 + 1
        i = value + length
    return None


def _decoded_size(path: Path, data: bytes) -> tuple[int, int]:
    image = decode_image(path, data)
    return image.shape[1], image.shape[0]


def read_image(path: Path) -> np.ndarray:
    """Frame file `path` as (H, W, 3) uint8 RGB (see the module's notes); VggtsError if unreadable."""
    return decode_image(path, _read(path))


def decode_image(path: Path, data: bytes) -> np.ndarray:
    """The bytes `data` of frame file `path` as (H, W, 3) uint8 RGB."""
    if path.suffix.lower() == ".exr":
        image = _decode_exr(path, data)
    else:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), _IMREAD) if data else None
        if image is None:
            raise VggtsError(f"{path}: not a readable {FORMATS[path.suffix.lower()].upper()} image")
        if image.ndim == 3:
            image = image[..., ::-1]  # OpenCV's BGR
    if image.dtype == np.uint8:
        pass
    elif image.dtype == np.uint16:
        image = ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif image.dtype.kind == "f":
        image = linear_to_srgb8(image)
    else:
        raise VggtsError(f"{path}: {image.dtype} samples are not supported (8 or 16 bits, or float)")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image)


def _decode_exr(path: Path, data: bytes) -> np.ndarray:
    """(H, W, 3) float32 RGB, linear, as FFmpeg's EXR decoder gives it (half, float, grey, alpha)."""
    try:
        with av.open(io.BytesIO(data), format="exr_pipe") as container:
            frame = next(container.decode(video=0), None)
            if frame is None:
                raise VggtsError(f"{path}: not a readable EXR image (no picture)")
            planes = frame.to_ndarray(format="gbrpf32le")  # planes in FFmpeg's order: G, B, R
    except (av.FFmpegError, ValueError) as err:
        raise VggtsError(f"{path}: not a readable EXR image ({ffmpeg_reason(err)})") from None
    return planes[..., [2, 0, 1]]


def linear_to_srgb8(linear: np.ndarray) -> np.ndarray:
    """Linear light -> uint8 sRGB: NaN as 0, clipped to [0, 1], the sRGB transfer curve, rounded."""
    x = np.clip(np.nan_to_num(linear.astype(np.float32), nan=0.0), 0.0, 1.0)
    encoded = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.rint(encoded * 255).astype(np.uint8)


class SequenceReader:
    """Decodes the frames of a probed image sequence, with the interface of `VideoReader`."""

    def __init__(self, info: SequenceInfo):
        self.info = info

    def __enter__(self) -> SequenceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass  # every frame file is opened and closed as it is read

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
        """Frames start..stop-1 in order."""
        start, stop = frame_range(self.info, start, stop)
        for index in range(start, stop):
            yield self._frame(index)

    def frames_reversed(self, start: int = 0, stop: int | None = None, chunk: int = 32) -> Iterator[Frame]:
        """Frames stop-1 down to start (`chunk` is VideoReader's; a sequence reads any frame directly)."""
        start, stop = frame_range(self.info, start, stop)
        for index in range(stop - 1, start - 1, -1):
            yield self._frame(index)

    def _frame(self, index: int) -> Frame:
        path = self.info.files[index]
        image = read_image(path)
        if image.shape[:2] != (self.info.height, self.info.width):
            raise VggtsError(
                f"{path}: {image.shape[1]}x{image.shape[0]}, but the sequence is "
                f"{self.info.width}x{self.info.height} (changed since it was probed?)"
            )
        return Frame(
            index=index, pts=int(self.info.pts[index]), time=float(self.info.times[index]), image=image
        )
