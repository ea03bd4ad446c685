"""`vggts bench`: throughput per stage (decode, model, encode, whole jobs), FLOPs and memory, with random
model weights (no download needed)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from vggts_cli.cli.common import Device, one_line_errors, progress_bar
from vggts_cli.engines.learned import ADAPT_STEPS
from vggts_cli.errors import UsageError
from vggts_cli.jobs import parse_list


class BenchModel(str, Enum):
    vggt_s_1b = "vggt-s-1b"
    vggt_s_tiny = "vggt-s-tiny"
    vggt_s_lite = "vggt-s-lite"


class BenchDtype(str, Enum):
    auto = "auto"
    bf16 = "bf16"
    fp32 = "fp32"


def parse_size(text: str, option: str = "--input-size") -> tuple[int, int]:
    """`"1920x1080"` -> (1920, 1080)."""
    width, sep, height = text.lower().partition("x")
    if sep and width.strip().isdigit() and height.strip().isdigit():
        return int(width), int(height)
    raise UsageError(f"{option} takes WIDTHxHEIGHT (e.g. 1920x1080), got '{text}'")


def _si(value: float, unit: str) -> str:
    """1.23e12 -> '1.23 T<unit>'."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _gib(memory: dict[str, Any]) -> str:
    return f"{memory['bytes'] / 2**30:.2f} GiB"


def _title(result: dict[str, Any]) -> str:
    parts = [f"{result['model']} on {result['device_name']} ({result['device']}), {result['dtype']}"]
    if "window" in result:
        parts.append(
            f"{result['size']}px window of {result['window']}, head at {result['head_size']}px, "
            f"{result['points']} tracked points, {result['iters']} timed iterations"
        )
    if "input" in result:
        inputs = result["input"]
        sizes = ", ".join(f"{v['width']}x{v['height']}" for v in inputs["videos"])
        kind = "synthetic" if inputs["synthetic"] else "given"
        parts.append(f"{inputs['frames']} frames of {len(inputs['videos'])} {kind} videos ({sizes})")
    return "; ".join(parts)


def render(result: dict[str, Any]) -> Table:
    """The result of `bench.bench` as a rich table: one row per stage (end-to-end: one per schedule)."""
    table = Table(title=_title(result))
    columns = ("stage", "per item", "throughput", "FLOPs", "achieved", "MFU", "peak memory")
    for column in columns:
        table.add_column(column, justify="left" if column == "stage" else "right")
    items = {"decode": "frame", "backbone": "frame", "tracker": "window", "head": "pair", "encode": "frame"}
    for stage in result["stages"]:
        if stage == "end-to-end":
            for schedule, r in result["end_to_end"]["schedules"].items():
                table.add_row(
                    f"end-to-end ({schedule})",
                    f"{r['seconds_per_pair'] * 1e3:.1f} ms",
                    f"{r['pairs_per_s']:.3g} pairs/s",
                    "-",
                    "-",
                    "-",
                    _gib(r["peak_memory"]),
                )
            tuning = result["end_to_end"]["tuning"]
            row = f"{tuning['seconds']:.1f} s", "once per job", "-", "-", "-", "-"
            table.add_row(f"tuning (--adapt {tuning['steps']})", *row)
            continue
        s, item = result[stage], items[stage]
        if stage in ("decode", "encode"):
            table.add_row(stage, f"{s['seconds'] / s['frames'] * 1e3:.1f} ms", f"{s['per_s']:.3g} {item}s/s")
            continue
        per_item = s["seconds_per_call"] / (result["window"] if stage == "backbone" else 1)
        table.add_row(
            stage,
            f"{per_item * 1e3:.1f} ms",
            f"{s['per_s']:.3g} {item}s/s",
            f"{_si(s['flops_per_item'], 'FLOP')}/{item}",
            _si(s["tflops_per_s"] * 1e12, "FLOP/s"),
            "-" if s["mfu"] is None else f"{s['mfu']:.1%}",
        )
    table.caption = _caption(result)
    return table


def _caption(result: dict[str, Any]) -> str:
    notes = []
    if "parameters" in result:
        params = result["parameters"]
        notes.append(f"parameters: backbone {_si(params['backbone'], '')}, head {_si(params['head'], '')}")
    memory = result["peak_memory"]
    notes.append(f"peak memory {_gib(memory)} ({memory['kind']})")
    if "end_to_end" in result:
        e2e = result["end_to_end"]
        ratio = e2e["windowed_over_pair"]
        notes.append(
            f"end-to-end: {e2e['pairs']} synchronized frame pairs, {e2e['cameras']} cameras, --write "
            f"{e2e['write']}" + ("" if ratio is None else f", windowed/pair {ratio:.2f}x")
        )
    if "window" in result:
        notes.append(
            "MFU needs bf16 on a GPU of known peak"
            if result["peak_tflops"] is None
            else f"MFU against a dense bf16 peak of {result['peak_tflops']:g} TFLOP/s"
        )
    return "; ".join(notes)


@one_line_errors
def bench(
    model: Annotated[BenchModel, typer.Option(help="Model size (random weights).")] = BenchModel.vggt_s_1b,
    device: Annotated[Device, typer.Option(help="Where to run.")] = Device.auto,
    stages: Annotated[
        str,
        typer.Option(
            metavar="LIST", help="Comma list of decode, backbone, tracker, head, encode, end-to-end."
        ),
    ] = "decode,backbone,tracker,head,encode,end-to-end",
    size: Annotated[
        int, typer.Option(metavar="PX", help="Backbone input side in pixels (a multiple of 14).")
    ] = 518,
    window: Annotated[int, typer.Option(metavar="FRAMES", help="Frames per backbone window (S).")] = 8,
    dtype: Annotated[
        BenchDtype,
        typer.Option(help="Model stages: bf16 autocast or fp32; auto = bf16 on CUDA, fp32 on CPU."),
    ] = BenchDtype.auto,
    iters: Annotated[
        int, typer.Option(metavar="N", help="Timed iterations per model stage (after a warm-up).")
    ] = 3,
    videos: Annotated[
        str | None,
        typer.Option(
            metavar="LIST",
            help="Comma list of videos (seed camera first, e.g. EGO,EXO) [default: two synthetic ones].",
        ),
    ] = None,
    frames: Annotated[
        int,
        typer.Option(
            metavar="N", help="Frames of each video for decode, encode and end-to-end (held in memory)."
        ),
    ] = 30,
    input_size: Annotated[
        str | None,
        typer.Option(metavar="WxH", help="Size of the synthetic videos, WIDTHxHEIGHT [default: 1920x1080]."),
    ] = None,
    schedules: Annotated[
        str, typer.Option(metavar="LIST", help="End-to-end backbone schedules, comma list of windowed, pair.")
    ] = "windowed,pair",
    adapt: Annotated[
        int,
        typer.Option(metavar="STEPS", min=0, help="Steps of the tuning to a job's mask (--adapt), timed."),
    ] = ADAPT_STEPS,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Measure decode, backbone, tracker, head and encode throughput, whole-job synchronized frame
    pairs/s per schedule, FLOPs, TFLOP/s, MFU and peak memory (GPU memory on CUDA, RSS on CPU).

    Example: vggts bench --model vggt-s-1b --device cuda --input-size 1920x1080 --frames 60
    """
    from vggts_cli.bench import bench as run_bench
    from vggts_cli.device import resolve_device

    precision = dtype.value
    if precision == "auto":  # what propagate itself uses on that device
        precision = "bf16" if resolve_device(device.value).type == "cuda" else "fp32"
    with progress_bar(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()) as bar:
        task = bar.add_task("bench", total=None)
        result = run_bench(
            model.value,
            device.value,
            size,
            window,
            precision,
            iters,
            stages=parse_list(stages),
            videos=[Path(v) for v in parse_list(videos or "")],
            frames=frames,
            input_size=None if input_size is None else parse_size(input_size),
            schedules=parse_list(schedules),
            adapt=adapt,
            on_step=lambda step: bar.update(task, description=f"bench: {step}"),
        )
    if json_output:
        print(json.dumps(result, indent=2))
    else:
        Console().print(render(result))
