"""Reader memory stays flat with video length: RSS after reading 3,000 frames vs after 300.

    .venv/bin/python benchmarks/reader_memory.py [--frames 3000] [--size 320x240]

Encodes a test video (tests/media.py) in a temporary folder, reads 300 frames forward, then all of
them forward and all of them backward, and prints the resident memory after each pass. It exits 1
if memory grew by more than --limit MiB, which would mean frames are being kept.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from media import make_video  # noqa: E402

from vggts_cli.video.reader import VideoReader, probe  # noqa: E402


def rss_mib() -> float:
    """Current resident set size of this process (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def read(info, start: int, stop: int, backward: bool = False) -> int:
    """Decode frames start..stop-1, touching every image; return how many were read."""
    with VideoReader(info) as reader:
        frames = reader.frames_reversed(start, stop) if backward else reader.frames(start, stop)
        return sum(int(frame.image[0, 0, 0] >= 0) for frame in frames)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT")
    parser.add_argument("--limit", type=float, default=32.0, help="allowed growth in MiB")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as folder:
        path = make_video(Path(folder) / "long.mp4", width=width, height=height, frames=args.frames, gop=60)
        info = probe(path)
        short = args.frames // 10
        read(info, 0, short)  # warm up: codec, threads, allocator pools
        base = rss_mib()
        print(f"{short:>6} frames forward : RSS {base:7.1f} MiB")
        n = read(info, 0, args.frames)
        forward = rss_mib()
        print(f"{n:>6} frames forward : RSS {forward:7.1f} MiB ({forward - base:+.1f})")
        n = read(info, 0, args.frames, backward=True)
        backward = rss_mib()
        print(f"{n:>6} frames backward: RSS {backward:7.1f} MiB ({backward - base:+.1f})")
    growth = max(forward, backward) - base
    print("flat" if growth <= args.limit else f"GREW by {growth:.1f} MiB (limit {args.limit})")
    return 0 if growth <= args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
