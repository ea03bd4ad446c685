"""The job description of `vggts propagate` (and of each `vggts batch` row), its one set of defaults, and
the check that runs before any work: `check_job` turns a `PropagateJob` into a `PreparedJob` or fails with
one clear error, having written nothing."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from vggts_cli.engines.learned import ADAPT_STEPS
from vggts_cli.engines.registry import default_engine
from vggts_cli.errors import UsageError
from vggts_cli.fsutil import check_folder, unique_names
from vggts_cli.masks.io import load_seed_objects
from vggts_cli.masks.objects import TrackedObject, exclusive
from vggts_cli.pipeline.journal import STATE_DIR
from vggts_cli.pipeline.lock import check_unlocked
from vggts_cli.prompts import PreparedPrompt, Prompt, prepare_prompts
from vggts_cli.sinks.alpha import check_exr_encoder
from vggts_cli.sinks.base import AlphaFormat, SinkOptions
from vggts_cli.sinks.outputs import OUTPUT_NAMES, check_outputs
from vggts_cli.video.inputs import camera_stem, input_bytes, probe_input
from vggts_cli.video.reader import VideoInfo
from vggts_cli.video.sequence import DEFAULT_FPS, SequenceInfo
from vggts_cli.video.sync import world_times

DEFAULT_WRITE: tuple[str, ...] = ("rle", "overlay")


@dataclass(frozen=True)
class PropagateJob:
    """Everything `vggts propagate` was asked to do."""

    src: Path
    masks: tuple[Path, ...]  # one binary mask per object, or one label map (masks/io.py)
    out: Path
    dsts: tuple[Path, ...] = ()  # none: one camera, tracked from the seed frame both ways
    mask_frame: int = 0
    write: tuple[str, ...] = DEFAULT_WRITE
    sink_options: SinkOptions = field(default_factory=SinkOptions)
    engine: str = field(default_factory=default_engine)
    model: str | None = None
    device: str = "auto"
    adapt: int | None = None  # learned engine: steps of tuning to the job's masks (None: ADAPT_STEPS)
    detail: str | None = None  # classic engine: "normal" (None) or "fine" (engines/registry.py DETAILS)
    offsets: tuple[tuple[str, float], ...] = ()
    resume: bool = False
    overwrite: bool = False
    fps: Fraction = DEFAULT_FPS  # of every image-sequence camera; videos keep their own timing
    prompts: tuple[Prompt, ...] = ()  # masks on other frames or cameras (prompts.py)


@dataclass(frozen=True)
class Camera:
    """One input video: its unique output name, metadata, and world-time offset (seconds)."""

    name: str
    info: VideoInfo
    offset: float

    @property
    def world_times(self) -> np.ndarray:
        """(T,) float64 seconds: presentation times plus the camera's offset."""
        return world_times(self.info, self.offset)


@dataclass(frozen=True)
class PreparedJob:
    """A checked job: its cameras (cameras[0] is the seed's), its objects and their seed masks (O, H, W)
    bool, one object per pixel, and its prompts in (camera, frame) order."""

    job: PropagateJob
    cameras: tuple[Camera, ...]
    seed_masks: np.ndarray
    objects: tuple[TrackedObject, ...]
    prompts: tuple[PreparedPrompt, ...] = ()

    def outputs(self) -> list[Path]:
        return [self.job.out / cam.name / OUTPUT_NAMES[k] for cam in self.cameras for k in self.job.write]


def parse_offsets(values: Iterable[str], option: str = "--offset") -> tuple[tuple[str, float], ...]:
    """`exo=0.4` -> ("exo", 0.4); seconds added to every timestamp of that camera."""
    parsed = []
    for value in values:
        name, sep, seconds = value.partition("=")
        try:
            if not sep or not name or not math.isfinite(float(seconds)):
                raise ValueError
            parsed.append((name, float(seconds)))
        except ValueError:
            raise UsageError(
                f"{option} takes CAMERA=SECONDS, a finite number (e.g. exo=0.4), got '{value}'"
            ) from None
    return tuple(parsed)


def parse_list(text: str) -> tuple[str, ...]:
    """A comma list: `"rle, overlay"` -> ("rle", "overlay") (`check_job` checks what the items name)."""
    return tuple(k.strip() for k in text.split(",") if k.strip())


def camera_names(paths: Sequence[Path]) -> list[str]:
    """File stems (a sequence's folder name) made unique in order: ego, exo, exo-2, …"""
    return unique_names([camera_stem(path) for path in paths])


def _check_paths(job: PropagateJob) -> None:
    """No video twice, and no output folder that holds an input."""
    resolved = [p.resolve() for p in (job.src, *job.dsts)]
    if len(set(resolved)) != len(resolved):
        raise UsageError("the same video is given twice")
    out = job.out.resolve()
    for p in (*resolved, *(m.resolve() for m in (*job.masks, *(q.path for q in job.prompts)))):
        if out == p or out in p.parents:
            raise UsageError(f"--out {job.out} holds the input {p}; choose a folder outside the inputs")


def _cameras(job: PropagateJob) -> tuple[Camera, ...]:
    """Probe every video or image sequence and attach its name and offset."""
    paths = (job.src, *job.dsts)
    infos = [probe_input(p, job.fps) for p in paths]
    names = camera_names(paths)
    offsets = dict(job.offsets)
    for name in offsets:
        if name not in names:
            raise UsageError(f"--offset names camera '{name}', but the cameras are: {', '.join(names)}")
    return tuple(Camera(n, info, offsets.get(n, 0.0)) for n, info in zip(names, infos, strict=True))


def _check_out(prepared: PreparedJob) -> None:
    """--out is (or can be made) a folder, and without --resume or --overwrite nothing of an earlier job is
    in the way."""
    job = prepared.job
    check_folder(job.out)
    check_unlocked(job.out, job.out / STATE_DIR)  # a job running there is named whatever the options
    if job.resume or job.overwrite:
        return
    if (job.out / STATE_DIR).exists():
        raise UsageError(f"{job.out} holds an earlier job; pass --resume to continue it or --overwrite")
    existing = [p for p in prepared.outputs() if p.exists()]
    if existing:
        raise UsageError(f"{existing[0]} exists; pass --overwrite to replace it or choose another --out")


def _seed_objects(job: PropagateJob, seed: VideoInfo) -> tuple[np.ndarray, tuple[TrackedObject, ...]]:
    """The seed frame's objects, one object per pixel (where given masks overlap, the first listed keeps
    the pixel); each must keep some of its mask."""
    if not job.masks:
        raise UsageError("no --mask given: one mask per object, or one label map")
    masks, objects = load_seed_objects(job.masks, seed.width, seed.height)
    masks = exclusive(masks, [1.0] * len(objects))
    for mask, obj in zip(masks, objects, strict=True):
        if not mask.any():
            raise UsageError(f"the mask of object '{obj.name}' lies wholly under the masks listed before it")
    if job.sink_options.redact_objects:
        unknown = [n for n in job.sink_options.redact_objects if not any(o.called(n) for o in objects)]
        if unknown:
            listed = ", ".join(o.name for o in objects)
            raise UsageError(f"--redact-objects names '{unknown[0]}', but the objects are: {listed}")
    return masks, objects


def check_job(job: PropagateJob) -> PreparedJob:
    """Check everything before any work starts: one clear error, nothing written."""
    check_outputs(job.write, "--write")
    if "alpha" in job.write and job.sink_options.alpha_format == AlphaFormat.exr:
        check_exr_encoder()
    _check_paths(job)
    cameras = _cameras(job)
    seed = cameras[0].info
    if not 0 <= job.mask_frame < seed.num_frames:
        raise UsageError(
            f"--mask-frame {job.mask_frame} is out of range: {job.src} has {seed.num_frames} frames "
            f"(0..{seed.num_frames - 1})"
        )
    masks, objects = _seed_objects(job, seed)
    names, infos = [c.name for c in cameras], [c.info for c in cameras]
    prompts = prepare_prompts(job.prompts, names, infos, objects, job.mask_frame)
    prepared = PreparedJob(job, cameras, masks, objects, prompts)
    _check_out(prepared)
    return prepared


# Sink options by the command-line option that sets them (others by their field name).
_SINK_OPTION_NAMES = {"redact_mode": "--redact", "margin_px": "--margin", "pixel_block": "--pixel-size"}


def _video_print(info: VideoInfo) -> dict:
    return {
        "path": str(info.path.resolve()),
        "size": input_bytes(info),
        "frames": info.num_frames,
        "sha256": info.digest,
    }


def fingerprint(prepared: PreparedJob) -> dict:
    """What must not change between a killed run and its --resume, keyed by the option that sets it: the
    inputs (path, size, frame count and a hash of their packets), the seed, the outputs and every option
    that shapes them. JSON values (lists, not tuples), so that it compares equal to the journal's copy."""
    job = prepared.job
    digest = hashlib.sha256(np.packbits(prepared.seed_masks).tobytes())
    for prompt in prepared.prompts:
        digest.update(f"{prompt.camera}:{prompt.frame}".encode())
        digest.update(np.packbits(prompt.masks).tobytes() + np.packbits(prompt.given).tobytes())
    mask_digest = digest.hexdigest()
    sink = {
        _SINK_OPTION_NAMES.get(k, "--" + k.replace("_", "-")): v for k, v in asdict(job.sink_options).items()
    }
    printed = {
        "--src": _video_print(prepared.cameras[0].info),
        "--dst": [_video_print(c.info) for c in prepared.cameras[1:]],
        "--offset": [c.offset for c in prepared.cameras],
        "--mask": {"sha256": mask_digest, "objects": [asdict(o) for o in prepared.objects]},
        "--mask-frame": job.mask_frame,
        "--write": sorted(set(job.write)),
        **sink,
        "--engine": job.engine,
        "--model": job.model,
        "--device": job.device,
    }
    if job.engine == "vggts":  # only where it applies: a classic job's print is unchanged
        printed["--adapt"] = ADAPT_STEPS if job.adapt is None else job.adapt
    if job.detail not in (None, "normal"):  # only where it changes the work: earlier prints stay valid
        printed["--detail"] = job.detail
    if any(isinstance(c.info, SequenceInfo) for c in prepared.cameras):
        printed["--fps"] = str(job.fps)  # only where it applies: a video job's print is unchanged
    return json.loads(json.dumps(printed, default=str))
