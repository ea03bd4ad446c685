"""Throughput of vggts stage by stage (random model weights, no download): video decode, the model's three
stages, video encode, and whole propagate jobs.

- decode: frames/s of `VideoReader` (RGB frames out) over the first `frames` frames of each input video.
- backbone: a window of S frames at size×size through the aggregator and the DPT feature extractor (the
  mask-free part, shared by every pair); frames/s.
- tracker: the head's `n_points` source points tracked through that window's feature maps.
- head: one [source, target] pair through the Union Segmentation Head at the model's own input size
  (its bottleneck grid fixes it), all refinement passes and the K-Means source points included; pairs/s.
- encode: frames/s of the H.264 `VideoWriter` (the overlay and redact encoder) at the inputs' own size.
- end-to-end: a real propagate job (`--write overlay`) over the cameras with the learned engine, once per
  backbone schedule ("windowed", "pair"): synchronized frame pairs/s, a pair being a frame of the first
  camera with the second camera's frame at that instant, and the windowed/pair ratio.

The video stages read the given videos, or a synthetic two-camera recording (vggts_cli.synth) at
`input_size`. Either way the first `frames` frames of each are written as an H.264 clip first: that write
is the encode stage, and the end-to-end jobs run on the clips. FLOPs are counted with `FlopCounterMode`
over one call of each model stage (matrix products, convolutions and attention; elementwise work is not
counted), achieved TFLOP/s = FLOPs / time, and model FLOP utilisation against the accelerator's dense bf16
tensor peak (none is reported for fp32 or on the CPU).
"""

from __future__ import annotations

import dataclasses
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from vggts_cli.device import resolve_device
from vggts_cli.engines.base import Engine, Reference, View
from vggts_cli.engines.learned import ADAPT_STEPS
from vggts_cli.engines.learned.engine import SCHEDULES
from vggts_cli.engines.registry import make_engine
from vggts_cli.errors import UsageError
from vggts_cli.jobs import PropagateJob, camera_names, check_job
from vggts_cli.masks.io import save_mask_png
from vggts_cli.model.configs import CONFIGS, VGGT_S_1B, ModelConfig
from vggts_cli.model.io import save_model
from vggts_cli.model.vggts import VGGTS
from vggts_cli.pipeline.run import run
from vggts_cli.synth.scene import CameraPath, Scene, ego_exo_cameras
from vggts_cli.video.reader import VideoInfo, VideoReader, probe
from vggts_cli.video.writer import VideoWriter

STAGES = ("decode", "backbone", "tracker", "head", "encode", "end-to-end")
MODEL_STAGES = ("backbone", "tracker", "head")
VIDEO_STAGES = ("decode", "encode", "end-to-end")
DTYPES = ("bf16", "fp32")
# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, matched against the device name.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "RTX 4090": 165.0}
CPU_MAX_1B_SIZE = 224  # vggt-s-1b on the CPU: ~5 GB of RAM and minutes per frame at 518
DEFAULT_INPUT_SIZE = (1920, 1080)
MIN_INPUT_SIDE = 16
SYNTH_FPS = Fraction(30)  # both synthetic cameras: one frame of each per pair
StepFn = Callable[[str], None]  # told each step's name as it starts: "backbone", "end-to-end (pair)", ...


# -- model stages ------------------------------------------------------------------------------------


def _count_cpu_attention() -> None:
    """FlopCounterMode knows the CUDA attention kernels but not the CPU flash kernel (it would count 0)."""
    op = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    if op not in flop_counter.flop_registry:
        flop_counter.register_flop_formula(op)(_attention_flops)


def _attention_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    """FLOPs of softmax(q k^T) v from the shapes of q, k, v (B, heads, L, D)."""
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def peak_tflops(device: torch.device, dtype: str) -> float | None:
    """The dense bf16 peak of a known CUDA device, else None (fp32, CPU or an unknown GPU)."""
    if device.type != "cuda" or dtype != "bf16":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _measure(fn: Callable[[], Any], iters: int, device: torch.device) -> tuple[float, int]:
    """(seconds per call over `iters` timed calls, FLOPs of one call); the counted call also warms up."""
    with FlopCounterMode(display=False) as counter:
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / iters, counter.get_total_flops()


def _stage(seconds: float, flops: int, per: int, peak: float | None) -> dict[str, float | None]:
    """Timing entries of one model stage: `per` items (frames, pairs) per call."""
    tflops = flops / seconds / 1e12
    return {
        "seconds_per_call": seconds,
        "per_s": per / seconds,
        "flops_per_item": flops / per,
        "tflops_per_s": tflops,
        "mfu": None if peak is None else tflops / peak,
    }


def _random_model(cfg: ModelConfig, device: torch.device) -> VGGTS:
    """`cfg` with seeded random weights on `device` (the global RNG is left as it was), frozen."""
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(0)
        return VGGTS(cfg).eval().requires_grad_(False)


def _bench_model(
    net: VGGTS,
    device: torch.device,
    size: int,
    window: int,
    dtype: str,
    iters: int,
    stages: Sequence[str],
    on_step: StepFn,
) -> dict[str, Any]:
    """The selected model stages: {stage: timing entries} plus the setup they ran with."""
    cfg = net.cfg
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(1, window, 3, size, size, generator=generator).to(device)
    queries = (torch.rand(1, cfg.head.n_points, 2, generator=generator) * (size - 1)).to(device)
    img, hw = cfg.head.img_size, cfg.head.backbone_hw
    head_feats = torch.randn(2, 1, cfg.head.embed_dim, hw, hw, generator=generator).to(device)
    yy, xx = torch.meshgrid(torch.arange(img), torch.arange(img), indexing="ij")
    src_mask = (((yy - img / 2) / (img / 4)) ** 2 + ((xx - img / 2) / (img / 6)) ** 2 <= 1)[None].to(device)
    tar_points = (torch.rand(1, cfg.head.n_points, 2, generator=generator) * (img - 1)).to(device)

    peak = peak_tflops(device, dtype)
    result: dict[str, Any] = {
        "size": size,
        "window": window,
        "iters": iters,
        "head_size": img,
        "points": cfg.head.n_points,
    }
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    with torch.inference_mode(), autocast:
        if "backbone" in stages:
            on_step("backbone")
            seconds, flops = _measure(lambda: net.features(images), iters, device)
            result["backbone"] = _stage(seconds, flops, window, peak)
        if "tracker" in stages:
            on_step("tracker")
            fmaps = net.features(images).float()
            seconds, flops = _measure(lambda: net.track(fmaps, queries), iters, device)
            result["tracker"] = _stage(seconds, flops, 1, peak)
        if "head" in stages:
            on_step("head")
            seconds, flops = _measure(
                lambda: net.head.segment(head_feats[0], head_feats[1], src_mask, tar_points), iters, device
            )
            result["head"] = _stage(seconds, flops, 1, peak)
    return result


# -- memory ------------------------------------------------------------------------------------------


class _PeakMemory:
    """Peak memory per section and overall: CUDA max_memory_allocated (reset at each `section`), or on the
    CPU the process's peak RSS, which only grows (so a section's figure is the process's peak so far)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._overall = 0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def section(self) -> None:
        """Start a section: from here `current` counts anew."""
        if self.device.type == "cuda":
            self._overall = max(self._overall, torch.cuda.max_memory_allocated(self.device))
            torch.cuda.reset_peak_memory_stats(self.device)

    def current(self) -> dict[str, int | str]:
        if self.device.type == "cuda":
            return {
                "bytes": torch.cuda.max_memory_allocated(self.device),
                "kind": "CUDA max_memory_allocated",
            }
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return {"bytes": rss if sys.platform == "darwin" else rss * 1024, "kind": "process peak RSS"}

    def overall(self) -> dict[str, int | str]:
        now = self.current()
        return {**now, "bytes": max(self._overall, int(now["bytes"]))}


# -- video stages ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Clip:
    """One camera's input for the video stages."""

    path: Path  # the `frames`-frame H.264 clip the end-to-end jobs read
    source: Path  # what the decode stage reads: the given video, or the clip itself when synthetic
    frames: int
    width: int
    height: int
    encode_seconds: float  # writing the clip


def _rate(frames: int, seconds: float) -> dict[str, float]:
    return {"frames": frames, "seconds": seconds, "per_s": frames / seconds}


def _synthetic_cameras(frames: int, width: int, height: int) -> list[CameraPath]:
    """The example rig's head and fixed cameras at `width`×`height`, both at SYNTH_FPS, same framing."""
    return [
        dataclasses.replace(
            camera,
            width=width,
            height=height,
            zoom=camera.zoom * width / camera.width,
            fps=SYNTH_FPS,
            num_frames=frames,
        )
        for camera in ego_exo_cameras(frames / float(SYNTH_FPS))
    ]


def _synthetic_info(path: Path, camera: CameraPath) -> VideoInfo:
    """The frame table a synthetic camera's clip is written with (frame i at i / fps)."""
    time_base = Fraction(1, camera.fps.numerator * 1000)
    pts = np.array([round(camera.time(i) / time_base) for i in range(camera.num_frames)], dtype=np.int64)
    return VideoInfo(
        path=path,
        width=camera.width,
        height=camera.height,
        rotation=0,
        fps=camera.fps,
        time_base=time_base,
        num_frames=camera.num_frames,
        duration=camera.num_frames / float(camera.fps),
        pts=pts,
        times=pts * float(time_base),
        audio_streams=0,
        codec="h264",
    )


def _first_frames(info: VideoInfo, frames: int) -> VideoInfo:
    """`info` cut to its first `frames` frames (their own timestamps)."""
    end = float(info.times[frames] - info.times[0]) if frames < info.num_frames else info.duration
    return dataclasses.replace(
        info, num_frames=frames, pts=info.pts[:frames], times=info.times[:frames], duration=end
    )


def _write_clip(path: Path, like: VideoInfo, images: Sequence[np.ndarray]) -> float:
    """Encode `images` as the frames of `like` with the H.264 writer; returns the seconds it took."""
    start = time.perf_counter()
    with VideoWriter.h264(path, like) as writer:
        for index, image in enumerate(images):
            writer.write(image, index)
    return time.perf_counter() - start


def _make_clips(
    videos: Sequence[Path], frames: int, input_size: tuple[int, int], folder: Path
) -> list[_Clip]:
    """Per camera, its first `frames` frames held in memory, then written as a clip (timed).

    Holding them (frames × width × height × 3 bytes) keeps decoding or rendering out of the encode timing.
    """
    clips = []
    if videos:
        for path, name in zip(videos, camera_names(videos), strict=True):
            info = probe(path)
            like = _first_frames(info, min(frames, info.num_frames))
            with VideoReader(info) as reader:
                images = [frame.image for frame in reader.frames(0, like.num_frames)]
            clip = folder / f"{name}.mp4"
            seconds = _write_clip(clip, like, images)
            clips.append(_Clip(clip, path, like.num_frames, like.width, like.height, seconds))
    else:
        scene = Scene.generate(0, duration=frames / float(SYNTH_FPS))
        for camera in _synthetic_cameras(frames, *input_size):
            clip = folder / f"{camera.name}.mp4"
            images = [scene.render(camera, i)[0] for i in range(frames)]
            seconds = _write_clip(clip, _synthetic_info(clip, camera), images)
            clips.append(_Clip(clip, clip, frames, camera.width, camera.height, seconds))
    return clips


def _bench_decode(clips: Sequence[_Clip]) -> dict[str, Any]:
    """Decode the first frames of every source video (probing and opening not timed)."""
    per_video = []
    for clip in clips:
        with VideoReader(probe(clip.source)) as reader:
            start = time.perf_counter()
            for _ in reader.frames(0, clip.frames):
                pass
            per_video.append({"video": str(clip.source), **_rate(clip.frames, time.perf_counter() - start)})
    return _totals(per_video)


def _bench_encode(clips: Sequence[_Clip]) -> dict[str, Any]:
    return _totals([{"video": str(c.path), **_rate(c.frames, c.encode_seconds)} for c in clips])


def _totals(per_video: list[dict[str, Any]]) -> dict[str, Any]:
    frames = sum(v["frames"] for v in per_video)
    return {**_rate(frames, sum(v["seconds"] for v in per_video)), "videos": per_video}


def _central_ellipse(height: int, width: int) -> np.ndarray:
    """(H, W) bool: an ellipse in the middle of the frame, the seed mask of the end-to-end jobs."""
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 2, height // 2), (max(1, width // 8), max(1, height // 5)), 0, 0, 360, 1, -1)
    return mask.astype(bool)


def _first_view(clip: _Clip) -> View:
    """The clip's first frame, as the View of its camera."""
    with VideoReader(probe(clip.path)) as reader:
        return View(clip.path.stem, 0, next(reader.frames(0, 1)).image)


def _warm_up(engine: Engine, clip: _Clip, mask: np.ndarray) -> None:
    """One segment call before the timed job, so that lazy initialisation is not timed."""
    view = _first_view(clip)
    engine.segment(view, [Reference(view, mask, "seed")])


def _bench_end_to_end(
    checkpoint: Path,
    clips: Sequence[_Clip],
    device: torch.device,
    schedules: Sequence[str],
    adapt: int,
    folder: Path,
    memory: _PeakMemory,
    on_step: StepFn,
) -> dict[str, Any]:
    """A propagate job (`--write overlay`) from the first camera into the others, per schedule; the tuning
    to its mask (`adapt` steps) timed on its own."""
    seed = clips[0]
    mask = _central_ellipse(seed.height, seed.width)
    mask_path = folder / "seed.png"
    save_mask_png(mask_path, mask)
    runs: dict[str, dict[str, Any]] = {}
    for schedule in schedules:
        on_step(f"end-to-end ({schedule})")
        # The propagation's throughput: the per-job tuning to the mask (--adapt) is a fixed cost, left out.
        engine = make_engine("vggts", str(checkpoint), str(device), schedule=schedule, adapt=0)
        job = PropagateJob(
            src=seed.path,
            dsts=tuple(c.path for c in clips[1:]),
            masks=(mask_path,),
            out=folder / f"out-{schedule}",
            write=("overlay",),
            engine="vggts",
            model=str(checkpoint),
            device=str(device),
            adapt=0,
        )
        prepared = check_job(job)
        _warm_up(engine, seed, mask)
        memory.section()
        start = time.perf_counter()
        run(prepared, engine)
        _sync(device)
        seconds = time.perf_counter() - start
        runs[schedule] = {
            "seconds": seconds,
            "seconds_per_pair": seconds / seed.frames,
            "pairs_per_s": seed.frames / seconds,
            "peak_memory": memory.current(),
        }
        del engine  # its model copy, before the next schedule loads its own
    ratio = None
    if "windowed" in runs and "pair" in runs:
        ratio = runs["windowed"]["pairs_per_s"] / runs["pair"]["pairs_per_s"]
    return {
        "pairs": seed.frames,
        "cameras": len(clips),
        "write": "overlay",
        "schedules": runs,
        "windowed_over_pair": ratio,
        "tuning": _bench_tuning(checkpoint, seed, mask, device, adapt, on_step),
    }


def _bench_tuning(
    checkpoint: Path, seed: _Clip, mask: np.ndarray, device: torch.device, steps: int, on_step: StepFn
) -> dict[str, Any]:
    """The learned engine's tuning to a job's mask (`--adapt steps`), once per job: seconds."""
    on_step(f"tuning (--adapt {steps})")
    engine = make_engine("vggts", str(checkpoint), str(device), adapt=steps)
    view = _first_view(seed)
    start = time.perf_counter()
    engine.start([Reference(view, mask, "seed")])
    _sync(device)
    return {"steps": steps, "seconds": time.perf_counter() - start}


# -- the benchmark -----------------------------------------------------------------------------------


def _check_model(
    cfg: ModelConfig, device: torch.device, size: int, window: int, dtype: str, iters: int
) -> None:
    patch = cfg.aggregator.dino.patch_size
    # The tracker's correlation pyramid halves the size/2 feature map corr_levels - 1 times.
    min_size = patch * -(-cfg.tracker.stride * 2 ** (cfg.tracker.corr_levels - 1) // patch)
    if size % patch or size < min_size:
        raise UsageError(f"--size must be a multiple of {patch} and at least {min_size}, got {size}")
    if window < 1 or iters < 1:
        raise UsageError("--window and --iters must be at least 1")
    if dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if cfg.name == VGGT_S_1B.name and device.type == "cpu" and size > CPU_MAX_1B_SIZE:
        raise UsageError(
            f"{cfg.name} on the CPU needs ~5 GB of RAM and minutes per frame at --size {size}; "
            f"use --device cuda, --model vggt-s-tiny, or --size {CPU_MAX_1B_SIZE} or smaller"
        )


def _check_video(
    cfg: ModelConfig,
    device: torch.device,
    stages: Sequence[str],
    videos: Sequence[Path],
    frames: int,
    input_size: tuple[int, int] | None,
    schedules: Sequence[str],
) -> None:
    if frames < 1:
        raise UsageError(f"--frames must be at least 1, got {frames}")
    if videos and input_size is not None:
        raise UsageError("--input-size sizes the synthetic videos; given --videos keep their own size")
    if input_size is not None and min(input_size) < MIN_INPUT_SIDE:
        raise UsageError(f"--input-size must be at least {MIN_INPUT_SIDE}x{MIN_INPUT_SIDE}, got {input_size}")
    if "end-to-end" not in stages:
        return
    if videos and len(videos) < 2:
        raise UsageError("the end-to-end stage needs two or more --videos (seed camera first)")
    unknown = [s for s in schedules if s not in SCHEDULES]
    if unknown or not schedules:
        raise UsageError(
            f"--schedules takes a comma list of {', '.join(SCHEDULES)}; got {','.join(schedules)}"
        )
    if cfg.name == VGGT_S_1B.name and device.type == "cpu":
        raise UsageError(
            f"the end-to-end stage runs {cfg.name} at {cfg.img_size}px, minutes per frame on the CPU; "
            "use --device cuda, --model vggt-s-tiny, or --stages without end-to-end"
        )


def bench(
    model: str | ModelConfig = "vggt-s-tiny",
    device: str = "auto",
    size: int = 518,
    window: int = 8,
    dtype: str = "bf16",
    iters: int = 3,
    stages: Sequence[str] = STAGES,
    videos: Sequence[Path] = (),
    frames: int = 30,
    input_size: tuple[int, int] | None = None,
    schedules: Sequence[str] = SCHEDULES,
    adapt: int = ADAPT_STEPS,
    on_step: StepFn = lambda step: None,
) -> dict[str, Any]:
    """Benchmark `stages` (of STAGES) with a random model (a name of `CONFIGS` or a ModelConfig).

    size/window/dtype/iters set the model stages; videos (given, else synthetic at input_size, default
    1920×1080), frames, schedules and adapt (steps of the once-a-job tuning, timed) the video stages.
    Returns a JSON-ready dict: the setup, per model stage seconds per call, items/s, FLOPs per item,
    TFLOP/s and MFU; for decode and encode frames, seconds and frames/s; for end-to-end per schedule
    seconds, pairs/s and peak memory, the windowed/pair ratio and the tuning's seconds; and the overall
    peak memory. `on_step(name)` is called as each step starts (for progress).
    """
    cfg = _config(model)
    stages = _stages(stages)
    videos = [Path(v) for v in videos]
    dev = resolve_device(device)
    if any(s in MODEL_STAGES for s in stages):
        _check_model(cfg, dev, size, window, dtype, iters)
    if any(s in VIDEO_STAGES for s in stages):
        _check_video(cfg, dev, stages, videos, frames, input_size, schedules)
    _count_cpu_attention()
    memory = _PeakMemory(dev)

    result = _setup(cfg, dev, dtype, stages)
    with tempfile.TemporaryDirectory(prefix="vggts-bench-") as tmp:
        folder = Path(tmp)
        checkpoint = folder / "random.safetensors"
        if any(s in MODEL_STAGES or s == "end-to-end" for s in stages):
            on_step("random model")
            result.update(
                _bench_random_model(cfg, dev, size, window, dtype, iters, stages, checkpoint, on_step)
            )
        if any(s in VIDEO_STAGES for s in stages):
            on_step("input clips")
            clips = _make_clips(videos, frames, input_size or DEFAULT_INPUT_SIZE, folder / "clips")
            result["input"] = {
                "synthetic": not videos,
                "frames": frames,
                "videos": [
                    {"video": str(c.source), "width": c.width, "height": c.height, "frames": c.frames}
                    for c in clips
                ],
            }
            if "decode" in stages:
                on_step("decode")
                result["decode"] = _bench_decode(clips)
            if "encode" in stages:
                on_step("encode")
                result["encode"] = _bench_encode(clips)
            if "end-to-end" in stages:
                result["end_to_end"] = _bench_end_to_end(
                    checkpoint, clips, dev, schedules, adapt, folder, memory, on_step
                )
    result["peak_memory"] = memory.overall()
    return result


def _setup(cfg: ModelConfig, dev: torch.device, dtype: str, stages: Sequence[str]) -> dict[str, Any]:
    """The result's head: what ran where."""
    return {
        "model": cfg.name,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else platform.processor() or "cpu",
        "dtype": dtype,
        "stages": list(stages),
        "peak_tflops": peak_tflops(dev, dtype),
    }


def _config(model: str | ModelConfig) -> ModelConfig:
    if isinstance(model, str):
        if model not in CONFIGS:
            raise UsageError(f"unknown model {model!r}: one of {', '.join(CONFIGS)}")
        return CONFIGS[model]
    return model


def _stages(stages: Sequence[str]) -> list[str]:
    """The asked stages, checked, in pipeline order (they run and are reported in that order)."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise UsageError(f"--stages takes a comma list of {', '.join(STAGES)}; got {','.join(stages)}")
    return [s for s in STAGES if s in stages]


def _bench_random_model(
    cfg: ModelConfig,
    dev: torch.device,
    size: int,
    window: int,
    dtype: str,
    iters: int,
    stages: Sequence[str],
    checkpoint: Path,
    on_step: StepFn,
) -> dict[str, Any]:
    """Parameter counts and the model stages of a random `cfg`; saved to `checkpoint` for end-to-end."""
    net = _random_model(cfg, dev)
    result: dict[str, Any] = {
        "parameters": {
            "backbone": sum(p.numel() for p in net.backbone().parameters()),
            "head": sum(p.numel() for p in net.head.parameters()),
        }
    }
    if any(s in MODEL_STAGES for s in stages):
        result.update(_bench_model(net, dev, size, window, dtype, iters, stages, on_step))
    if "end-to-end" in stages:
        save_model(net, checkpoint)  # the engine loads it as `propagate --model` would
    del net  # the end-to-end engines hold their own copy
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return result
