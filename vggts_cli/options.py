"""Option values shared by the commands: `--device`, and parsers for `vggts propagate` and batch rows."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from vggts_cli.errors import UsageError


class Device(str, Enum):
    """Where the model runs; auto picks CUDA when there is one."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def parse_offsets(values: Iterable[str], option: str = "--offset") -> tuple[tuple[str, float], ...]:
    """`exo=0.4` -> ("exo", 0.4); seconds added to every timestamp of that camera."""
    parsed = []
    for value in values:
        name, sep, seconds = value.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            parsed.append((name, float(seconds)))
        except ValueError:
            raise UsageError(f"{option} takes CAMERA=SECONDS (e.g. exo=0.4), got '{value}'") from None
    return tuple(parsed)


def parse_write(text: str) -> tuple[str, ...]:
    """`"rle, overlay"` -> ("rle", "overlay"); `prepare` checks the names."""
    return tuple(k.strip() for k in text.split(",") if k.strip())
