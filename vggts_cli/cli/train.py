"""`vggts train`: train a VGGT-S of a small config on self-supervised and rendered pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vggts_cli.cli.common import Device, one_line_errors, progress_bar
from vggts_cli.train import defaults

MIX_DEFAULT = defaults.mix_text()


def _parse_mix(text: str) -> dict[str, float]:
    """'adaptive=0.3,non_adaptive=0.3,rig=0.4' -> {...}, weights > 0."""
    from vggts_cli.errors import UsageError
    from vggts_cli.train.samples import KINDS

    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in KINDS:
            raise UsageError(f"--mix: {name!r} is not one of {', '.join(KINDS)}")
        try:
            mix[name] = float(value)
        except ValueError:
            raise UsageError(f"--mix: {part!r} is not NAME=WEIGHT") from None
        if mix[name] < 0:
            raise UsageError(f"--mix: {name} weight must be >= 0")
    if not mix or sum(mix.values()) <= 0:
        raise UsageError("--mix needs at least one positive weight")
    return mix


MixOpt = Annotated[
    str,
    typer.Option(
        metavar="MIX",
        help="Share of each pair kind: adaptive (mild single-image augmentation, tracked prompts), "
        "non_adaptive (strong perspective/rotation/scale, synthesised prompts), rig (rendered "
        "ego/exo pairs), scene (moving-object recordings: temporal and cross-camera pairs), focus "
        "(rig pairs whose target is seen through a focus window, as the engine sees small objects).",
    ),
]
BalancedFocalOpt = Annotated[
    bool,
    typer.Option(
        "--balanced-focal",
        help="Weigh object and background pixels alike in the focal loss (SAM's: α = 0.25).",
    ),
]
MinutesOpt = Annotated[
    float | None,
    typer.Option(
        metavar="MINUTES",
        help="Stop (with a checkpoint) after this much wall time; --resume goes on [default: no limit].",
    ),
]
InitOpt = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE",
        help="Start from this model file (same --config) to fine-tune it [default: fresh weights].",
    ),
]


@one_line_errors
def train(
    out: Annotated[
        Path, typer.Option(metavar="DIR", help="Run folder: checkpoint.pt, model.safetensors, train.jsonl.")
    ],
    config: Annotated[
        str, typer.Option(metavar="NAME", help="Model size to train (vggt-s-lite is the shipped one).")
    ] = defaults.MODEL,
    steps: Annotated[
        int, typer.Option(metavar="N", min=1, help="Optimiser steps in the whole run.")
    ] = defaults.STEPS,
    batch_size: Annotated[
        int, typer.Option(metavar="N", min=1, help="Pairs per step.")
    ] = defaults.BATCH_SIZE,
    lr: Annotated[
        float, typer.Option(metavar="LR", help="Peak learning rate (AdamW, warm-up then cosine).")
    ] = defaults.LR,
    mix: MixOpt = MIX_DEFAULT,
    seed: Annotated[
        int, typer.Option(metavar="N", help="Seed of the weights and of the data stream.")
    ] = defaults.SEED,
    balanced_focal: BalancedFocalOpt = False,
    minutes: MinutesOpt = None,
    checkpoint_every: Annotated[
        int, typer.Option(metavar="N", min=1, help="Steps between checkpoints.")
    ] = 200,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its checkpoint.")
    ] = False,
    init: InitOpt = None,
    device: Annotated[Device, typer.Option(help="auto = cuda when available, else cpu.")] = Device.auto,
) -> None:
    """Train a model from scratch: single-image self-supervised pairs (photos shipped in scikit-image)
    plus rendered multi-view pairs. Needs `pip install 'vggts[train]'`.

    The result, OUT/model.safetensors, is used with `vggts propagate --engine vggts --model FILE`
    and scored with `vggts eval rendered --engine vggts --model FILE`.
    """
    from vggts_cli.device import resolve_device
    from vggts_cli.train.loop import TrainConfig, Trainer

    cfg = TrainConfig(
        model=config,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        mix=_parse_mix(mix),
        focal_alpha=None if balanced_focal else defaults.FOCAL_ALPHA,
        init=None if init is None else str(init),
    )
    trainer = Trainer(cfg, out, resolve_device(device.value), resume=resume)
    with progress_bar() as bar:
        task = bar.add_task("training", total=steps, completed=trainer.step)

        def on_step(step: int, losses) -> None:
            bar.update(
                task,
                completed=step,
                description=f"training loss {losses.total:.3f} IoU {losses.iou:.2f}",
            )

        reached = trainer.run(checkpoint_every, None if minutes is None else minutes * 60, on_step=on_step)
    typer.echo(f"step {reached}/{steps} -> {out / 'model.safetensors'}", err=True)
