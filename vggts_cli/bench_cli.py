"""`vggts bench`: throughput, FLOPs and memory of the model with random weights (no download needed)."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vggts_cli.options import Device


class BenchModel(str, Enum):
    vggt_s_1b = "vggt-s-1b"
    vggt_s_tiny = "vggt-s-tiny"


class BenchDtype(str, Enum):
    auto = "auto"
    bf16 = "bf16"
    fp32 = "fp32"


def _si(value: float, unit: str) -> str:
    """1.23e12 -> '1.23 T<unit>'."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def render(result: dict[str, Any]) -> Table:
    """The result of `bench.bench` as a rich table: one row per stage."""
    table = Table(
        title=(
            f"{result['model']} on {result['device_name']} ({result['device']}), {result['dtype']}, "
            f"{result['size']}px window of {result['window']}, head at {result['head_size']}px, "
            f"{result['points']} tracked points, {result['iters']} timed iterations"
        )
    )
    for column in ("stage", "per call", "throughput", "FLOPs", "achieved", "MFU"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    stages = (("backbone", "frame"), ("tracker", "window"), ("head", "pair"))
    for stage, item in stages:
        s = result[stage]
        table.add_row(
            stage,
            f"{s['seconds_per_call'] * 1e3:.1f} ms",
            f"{s['per_s']:.3g} {item}s/s",
            f"{_si(s['flops_per_item'], 'FLOP')}/{item}",
            _si(s["tflops_per_s"] * 1e12, "FLOP/s"),
            "-" if s["mfu"] is None else f"{s['mfu']:.1%}",
        )
    memory = result["peak_memory"]
    params = result["parameters"]
    table.caption = (
        f"parameters: backbone {_si(params['backbone'], '')}, head {_si(params['head'], '')}; "
        f"peak memory {memory['bytes'] / 2**30:.2f} GiB ({memory['kind']}); "
        + (
            "MFU needs bf16 on a GPU of known peak"
            if result["peak_tflops"] is None
            else f"MFU against a dense bf16 peak of {result['peak_tflops']:g} TFLOP/s"
        )
    )
    return table


def register(app: typer.Typer) -> None:
    """Add `vggts bench` to `app` (call it after `cli.one_line_errors` is defined)."""
    from vggts_cli.cli import one_line_errors

    @app.command()
    @one_line_errors
    def bench(
        model: Annotated[
            BenchModel, typer.Option(help="Model size (random weights).")
        ] = BenchModel.vggt_s_1b,
        device: Annotated[Device, typer.Option(help="Where to run.")] = Device.auto,
        size: Annotated[int, typer.Option(help="Backbone input side in pixels (a multiple of 14).")] = 518,
        window: Annotated[int, typer.Option(help="Frames per backbone window (S).")] = 8,
        dtype: Annotated[
            BenchDtype, typer.Option(help="bf16 autocast or plain fp32; auto = bf16 on CUDA, fp32 on CPU.")
        ] = BenchDtype.auto,
        iters: Annotated[int, typer.Option(help="Timed iterations per stage (after one warm-up).")] = 3,
        json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Measure backbone frames/s, tracker and head pairs/s, FLOPs, TFLOP/s, MFU and peak memory.

        Example: vggts bench --model vggt-s-1b --device cuda --window 8
        """
        from vggts_cli.bench import bench as run_bench
        from vggts_cli.model.vggts import resolve_device

        precision = dtype.value
        if precision == "auto":  # what propagate itself uses on that device
            precision = "bf16" if resolve_device(device.value).type == "cuda" else "fp32"
        result = run_bench(model.value, device.value, size, window, precision, iters)
        if json_output:
            print(json.dumps(result, indent=2))
        else:
            Console().print(render(result))
