"""Prompts: the user's masks on frames other than the seed's — a correction, or the object seen by another
camera. `--mask CAMERA:FRAME:PATH` (CAMERA: a camera's output name, FRAME: its frame index).

A prompt's frame is output exactly as given; the walk goes on from it (it is that camera's previous frame
for the next one), and every frame is also given its objects' nearest prompt in time as a long-term
reference. A prompt file is a label map (every object of the job at once: an object missing from it is
absent there) or a binary mask of one object: the job's only object, or the one named like the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vggts_cli.errors import UsageError
from vggts_cli.masks.io import load_prompt_masks
from vggts_cli.masks.objects import TrackedObject
from vggts_cli.video.reader import VideoInfo

_PROMPT = re.compile(r"^(?P<camera>[^:/\\]+):(?P<frame>\d+):(?P<path>.+)$")


@dataclass(frozen=True)
class Prompt:
    """`--mask CAMERA:FRAME:PATH` as given."""

    camera: str
    frame: int
    path: Path


@dataclass(frozen=True)
class PreparedPrompt:
    """A checked prompt: its camera's index, frame, masks (O, H, W) bool and which objects it gives (O,)."""

    camera: int
    frame: int
    masks: np.ndarray
    given: np.ndarray


def parse_masks(values: Iterable[str | Path]) -> tuple[tuple[Path, ...], tuple[Prompt, ...]]:
    """`--mask` values -> (the seed's mask files, the prompts): `CAMERA:FRAME:PATH` is a prompt unless a
    file of that whole name exists."""
    seeds: list[Path] = []
    prompts: list[Prompt] = []
    for value in values:
        match = _PROMPT.match(str(value))
        if match and not Path(value).exists():
            prompts.append(Prompt(match["camera"], int(match["frame"]), Path(match["path"])))
        else:
            seeds.append(Path(value))
    return tuple(seeds), tuple(prompts)


def prepare_prompts(
    prompts: Sequence[Prompt],
    names: Sequence[str],
    infos: Sequence[VideoInfo],
    objects: Sequence[TrackedObject],
    seed_frame: int,
) -> tuple[PreparedPrompt, ...]:
    """Check each prompt against the cameras (`names`, `infos`; camera 0 holds the seed at `seed_frame`)
    and the job's objects, and read its masks; one line for the first bad one."""
    prepared: dict[tuple[int, int], PreparedPrompt] = {}
    for prompt in prompts:
        where = f"--mask {prompt.camera}:{prompt.frame}:{prompt.path}"
        if prompt.camera not in names:
            raise UsageError(
                f"{where} names camera '{prompt.camera}', but the cameras are: {', '.join(names)}"
            )
        camera = names.index(prompt.camera)
        info = infos[camera]
        if prompt.frame >= info.num_frames:
            raise UsageError(
                f"{where}: {prompt.camera} has {info.num_frames} frames (0..{info.num_frames - 1})"
            )
        if (camera, prompt.frame) == (0, seed_frame):
            raise UsageError(f"{where} is the seed's own frame; give the mask once")
        if (camera, prompt.frame) in prepared:
            raise UsageError(f"{where}: that frame already has a prompt")
        masks, given = load_prompt_masks(prompt.path, info.width, info.height, objects)
        prepared[(camera, prompt.frame)] = PreparedPrompt(camera, prompt.frame, masks, given)
    return tuple(prepared[key] for key in sorted(prepared))
