"""Throughput of the model's three stages with random weights: backbone, tracker, segmentation head.

- backbone: a window of S frames at size×size through the aggregator and the DPT feature extractor (the
  mask-free part, shared by every pair); frames/s.
- tracker: the head's `n_points` source points tracked through that window's feature maps.
- head: one [source, target] pair through the Union Segmentation Head at the model's own input size
  (its bottleneck grid fixes it), all refinement passes and the K-Means source points included; pairs/s.
FLOPs are counted with `FlopCounterMode` over one call of each stage (matrix products, convolutions and
attention; elementwise work is not counted), achieved TFLOP/s = FLOPs / time, and model FLOP utilisation
against the accelerator's dense bf16 tensor peak (none is reported for fp32 or on the CPU).
"""

from __future__ import annotations

import platform
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from vggts_cli.errors import UsageError
from vggts_cli.model.configs import CONFIGS, VGGT_S_1B, ModelConfig
from vggts_cli.model.vggts import VGGTS, resolve_device

DTYPES = ("bf16", "fp32")
# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, matched against the device name.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "RTX 4090": 165.0}
CPU_MAX_1B_SIZE = 224  # vggt-s-1b on the CPU: ~5 GB of RAM and minutes per frame at 518


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
    """Timing entries of one stage: `per` items (frames, pairs) per call."""
    tflops = flops / seconds / 1e12
    return {
        "seconds_per_call": seconds,
        "per_s": per / seconds,
        "flops_per_item": flops / per,
        "tflops_per_s": tflops,
        "mfu": None if peak is None else tflops / peak,
    }


def _peak_memory(device: torch.device) -> dict[str, int | str]:
    if device.type == "cuda":
        return {"bytes": torch.cuda.max_memory_allocated(device), "kind": "CUDA max_memory_allocated"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return {"bytes": rss if sys.platform == "darwin" else rss * 1024, "kind": "process peak RSS"}


def _check(cfg: ModelConfig, device: torch.device, size: int, window: int, dtype: str, iters: int) -> None:
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


def bench(
    model: str | ModelConfig = "vggt-s-tiny",
    device: str = "auto",
    size: int = 518,
    window: int = 8,
    dtype: str = "bf16",
    iters: int = 3,
) -> dict[str, Any]:
    """Benchmark a randomly initialised model (a config name of `CONFIGS` or a ModelConfig).

    Returns a JSON-ready dict: the setup, parameter counts, per stage (`backbone` per frame, `tracker` per
    window, `head` per pair) seconds per call, items/s, FLOPs per item, TFLOP/s and MFU, and peak memory.
    """
    if isinstance(model, str):
        if model not in CONFIGS:
            raise UsageError(f"unknown model {model!r}: one of {', '.join(CONFIGS)}")
        model = CONFIGS[model]
    cfg = model
    dev = resolve_device(device)
    _check(cfg, dev, size, window, dtype, iters)
    _count_cpu_attention()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]), torch.device(dev):
        torch.manual_seed(0)
        net = VGGTS(cfg).eval().requires_grad_(False)
    images = torch.rand(1, window, 3, size, size, generator=generator).to(dev)
    queries = (torch.rand(1, cfg.head.n_points, 2, generator=generator) * (size - 1)).to(dev)
    img, hw = cfg.head.img_size, cfg.head.feature_hw
    head_feats = torch.randn(2, 1, 128, hw, hw, generator=generator).to(dev)
    yy, xx = torch.meshgrid(torch.arange(img), torch.arange(img), indexing="ij")
    src_mask = (((yy - img / 2) / (img / 4)) ** 2 + ((xx - img / 2) / (img / 6)) ** 2 <= 1)[None].to(dev)
    tar_points = (torch.rand(1, cfg.head.n_points, 2, generator=generator) * (img - 1)).to(dev)

    peak = peak_tflops(dev, dtype)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    with torch.inference_mode(), autocast:
        backbone_s, backbone_flops = _measure(lambda: net.features(images), iters, dev)
        fmaps = net.features(images).float()
        tracker_s, tracker_flops = _measure(lambda: net.track(fmaps, queries), iters, dev)
        head_s, head_flops = _measure(
            lambda: net.head.segment(head_feats[0], head_feats[1], src_mask, tar_points), iters, dev
        )

    return {
        "model": cfg.name,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else platform.processor() or "cpu",
        "dtype": dtype,
        "size": size,
        "window": window,
        "iters": iters,
        "head_size": img,
        "points": cfg.head.n_points,
        "parameters": {
            "backbone": sum(p.numel() for p in net.backbone().parameters()),
            "head": sum(p.numel() for p in net.head.parameters()),
        },
        "peak_tflops": peak,
        "backbone": _stage(backbone_s, backbone_flops, window, peak),
        "tracker": _stage(tracker_s, tracker_flops, 1, peak),
        "head": _stage(head_s, head_flops, 1, peak),
        "peak_memory": _peak_memory(dev),
    }
