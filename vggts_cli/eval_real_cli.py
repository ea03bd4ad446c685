"""`vggts eval vos` and `vggts eval pairs`: engines on real footage (DAVIS-layout video with human masks, and
real two-view pairs); `eval_cli.register` adds them to `vggts eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vggts_cli.eval_cli import ENGINE_HELP, JSON_HELP, MODEL_HELP
from vggts_cli.options import Device


def register_real(eval_app: typer.Typer) -> None:
    """Add `vos` and `pairs` to the `vggts eval` group `eval_app`."""
    from vggts_cli.cli import one_line_errors, progress_bar
    from vggts_cli.eval_cli import _default_engines, _emit, _engines

    @eval_app.command()
    @one_line_errors
    def vos(
        data: Annotated[
            Path, typer.Option(help="DAVIS-layout folder: JPEGImages/480p/<seq>/, Annotations/480p/<seq>/.")
        ],
        sequences: Annotated[
            Path | None,
            typer.Option(
                metavar="FILE",
                help="Sequences to score: one name a line, or DAVIS 2016 ImageSets lines of frame paths "
                "[default: every sequence of DATA].",
            ),
        ] = None,
        engine: Annotated[list[str] | None, typer.Option(metavar="NAME", help=ENGINE_HELP)] = None,
        model: Annotated[str | None, typer.Option(metavar="NAME|FILE", help=MODEL_HELP)] = None,
        device: Annotated[Device, typer.Option(help="Where learned engines run.")] = Device.auto,
        max_frames: Annotated[
            int | None,
            typer.Option(min=3, help="Score only each sequence's first N frames (taken as the whole clip)."),
        ] = None,
        json_out: Annotated[str | None, typer.Option("--json", metavar="FILE", help=JSON_HELP)] = None,
    ) -> None:
        """Score engines on DAVIS-style video: J (region IoU), F (boundary) and J&F, as DAVIS 2017 does.

        Each object of a sequence's first annotation is propagated from that mask alone; the first and last
        frames are not scored; means over all objects. Palette annotations: 0 background, 255 void (ignored).

        Example: vggts eval vos --data DAVIS --sequences DAVIS/ImageSets/480p/train.txt --engine classic
        """
        from vggts_cli.eval.report import vos_table
        from vggts_cli.eval.vos import engine_calls, evaluate_vos, sequence_names

        names = sequence_names(data, sequences)
        engines = _engines(engine or _default_engines(), model, device.value)
        total = engine_calls(data, names, max_frames) * len(engines)
        with progress_bar() as bar:
            task = bar.add_task("frames", total=total)
            result = evaluate_vos(engines, data, names, max_frames, lambda n: bar.advance(task, n))
        _emit(result, json_out, vos_table(result))

    @eval_app.command()
    @one_line_errors
    def pairs(
        data: Annotated[
            Path,
            typer.Option(
                help="A pair-set folder with pairs.json (python -m vggts_cli.eval.pairs makes one)."
            ),
        ],
        engine: Annotated[list[str] | None, typer.Option(metavar="NAME", help=ENGINE_HELP)] = None,
        model: Annotated[str | None, typer.Option(metavar="NAME|FILE", help=MODEL_HELP)] = None,
        device: Annotated[Device, typer.Option(help="Where learned engines run.")] = Device.auto,
        json_out: Annotated[str | None, typer.Option("--json", metavar="FILE", help=JSON_HELP)] = None,
    ) -> None:
        """Score engines on real two-view pairs: the mask in view A, the object (or its absence) in view B.

        Per group and overall: IoU and boundary F where the target shows the object, and the visibility
        balanced accuracy of the presence score (> 0.5 = present) over targets with and without it.

        Example: vggts eval pairs --data real_pairs/ --engine classic --engine vggts --json pairs.json
        """
        from vggts_cli.eval.pairs import evaluate_pairs, load_pairs
        from vggts_cli.eval.report import pairs_table

        pair_list = load_pairs(data)
        engines = _engines(engine or _default_engines(), model, device.value)
        with progress_bar() as bar:
            task = bar.add_task("pairs", total=len(pair_list) * len(engines))
            result = evaluate_pairs(engines, pair_list, lambda n: bar.advance(task, n))
        result = {"data": str(data), "pairs": len(pair_list), **result}
        _emit(result, json_out, pairs_table(result, f"Real two-view pairs: {data} ({len(pair_list)} pairs)"))
