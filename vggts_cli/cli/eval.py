"""`vggts eval`: score engines on our rendered validation tiers, on real footage (DAVIS-layout video, real
two-view pairs), and make and score Ego-Exo4D predictions."""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from vggts_cli.cli.common import (
    ADAPT_HELP,
    DETAIL_HELP,
    MODEL_HELP,
    Detail,
    Device,
    one_line_errors,
    progress_bar,
    report,
)
from vggts_cli.fsutil import write_text

if TYPE_CHECKING:
    from rich.table import Table

    from vggts_cli.engines.base import Engine

ENGINE_HELP = (
    "Engine to evaluate: classic (weight-free) or vggts (--model, or the shipped model); repeat to compare "
    "[default: both, or classic alone when no model ships]."
)
T = TypeVar("T")
JSON_HELP = (
    "Also write the result as JSON to this file ('-': print it on stdout instead of the table) "
    "[default: none]."
)

# The options every scoring command takes.
EngineNames = Annotated[list[str] | None, typer.Option(metavar="NAME", help=ENGINE_HELP)]
ModelName = Annotated[str | None, typer.Option(metavar="NAME|FILE", help=MODEL_HELP)]
AdaptSteps = Annotated[int | None, typer.Option(metavar="STEPS", help=ADAPT_HELP, show_default=False)]
DetailLevel = Annotated[Detail | None, typer.Option(help=DETAIL_HELP, show_default=False)]
LearnedDevice = Annotated[Device, typer.Option(help="Where learned engines run.")]
JsonOut = Annotated[str | None, typer.Option("--json", metavar="FILE", help=JSON_HELP)]


class Direction(str, Enum):
    both = "both"
    ego_exo = "ego-exo"
    exo_ego = "exo-ego"


def _engines(
    names: list[str], model: str | None, device: str, adapt: int | None, detail: Detail | None
) -> dict[str, Engine]:
    """Name -> Engine for each distinct `--engine`; `--model` and `--adapt` go to the learned engine only,
    `--detail` to the classic one."""
    from vggts_cli.engines.registry import check_model, make_engine

    names = list(dict.fromkeys(names))
    level = None if detail is None else detail.value
    check_model(names, model, adapt=adapt, detail=level)
    options = {"vggts": {"model": model, "adapt": adapt}, "classic": {"detail": level}}
    return {name: make_engine(name, device=device, **options.get(name, {})) for name in names}


def _require_photos() -> None:
    """The validation scenes are textured with scikit-image's bundled photographs; without them the
    generator falls back to procedural textures, i.e. other scenes and scores that do not compare."""
    from vggts_cli.errors import UsageError

    try:
        import skimage.data  # noqa: F401
    except ImportError:
        raise UsageError(
            "the rendered validation scenes need scikit-image's photographs: pip install 'vggts[train]'"
        ) from None


def _default_engines() -> list[str]:
    """Both engines when the package ships a model, else the classic one."""
    from vggts_cli.weights import shipped_model_path

    return ["classic", "vggts"] if shipped_model_path().is_file() else ["classic"]


def _counted(unit: str, total: int, work: Callable[[Callable[[int], None]], T]) -> T:
    """`work(tick)` under one progress bar of `total` `unit`s; `tick(n)` advances it by n."""
    with progress_bar() as bar:
        task = bar.add_task(unit, total=total)
        return work(lambda n: bar.advance(task, n))


def _emit(result: dict, json_out: str | None, table: Table) -> None:
    """The table on stdout, and/or the JSON result where `--json` says (written atomically)."""
    from rich.console import Console

    if json_out == "-":
        print(json.dumps(result, indent=2))
        return
    Console().print(table)
    if json_out is not None:
        write_text(Path(json_out), json.dumps(result, indent=2) + "\n")


app = typer.Typer(
    help=(
        "Measure how well an engine finds the object: on our rendered validation scenes "
        "(`vggts eval rendered`), on real video with human masks (`vggts eval vos`) and real two-view "
        "pairs (`vggts eval pairs`), or on Ego-Exo4D correspondence (`vggts eval egoexo run` makes a "
        "prediction file, `vggts eval egoexo score` scores it with the official conventions)."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)
egoexo_app = typer.Typer(
    help=(
        "Ego-Exo4D correspondence (ego→exo and exo→ego). Needs the processed ground truth "
        "(the benchmark's process_annotations.py output) and, to run an engine, the takes' "
        "frame_aligned_videos."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(egoexo_app, name="egoexo")


@app.command()
@one_line_errors
def rendered(
    engine: EngineNames = None,
    model: ModelName = None,
    device: LearnedDevice = Device.auto,
    adapt: AdaptSteps = None,
    detail: DetailLevel = None,
    pairs: Annotated[int, typer.Option(metavar="N", min=1, help="Rendered ego/exo pairs per tier.")] = 40,
    tiers: Annotated[
        str, typer.Option(metavar="LIST", help="Comma list of tiers: easy, medium, hard.")
    ] = "easy,medium,hard",
    wide: Annotated[
        bool,
        typer.Option(
            "--wide",
            help="The widened validation: camera looks beyond the training ranges "
            "(lens, light, noise, JPEG, object size, distance) and absent-object queries.",
        ),
    ] = False,
    json_out: JsonOut = None,
) -> None:
    """Score engines on rendered validation scenes, by tier and direction (ego→exo, exo→ego).

    Per cell: mIoU ×100 over pairs visible in both views (the paper's protocol).

    Then the Ego-Exo4D metrics (IoU, contour F, location error LE, visibility accuracy) and s/pair.

    No training run ever sees these scenes; a tier's scenes are the same on every run.

    Example: vggts eval rendered --engine classic --engine vggts --pairs 40 --json rendered.json
    """
    from vggts_cli.eval.rendered import evaluate_rendered, parse_tiers, queries_per_pair
    from vggts_cli.eval.report import rendered_table

    tier_list = parse_tiers(tiers)
    _require_photos()
    engines = _engines(engine or _default_engines(), model, device.value, adapt, detail)
    total = len(tier_list) * pairs * 2 * len(engines) * queries_per_pair(wide)
    result = _counted("pairs", total, lambda tick: evaluate_rendered(engines, tier_list, pairs, tick, wide))
    _emit(result, json_out, rendered_table(result))


@app.command()
@one_line_errors
def vos(
    data: Annotated[
        Path,
        typer.Option(
            metavar="DIR", help="DAVIS-layout folder: JPEGImages/480p/<seq>/, Annotations/480p/<seq>/."
        ),
    ],
    sequences: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Sequences to score: one name a line, or DAVIS 2016 ImageSets lines of frame paths "
            "[default: every sequence of DATA].",
        ),
    ] = None,
    engine: EngineNames = None,
    model: ModelName = None,
    device: LearnedDevice = Device.auto,
    adapt: AdaptSteps = None,
    detail: DetailLevel = None,
    max_frames: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            min=3,
            help="Score only each sequence's first N frames (taken as the whole clip) [default: all].",
        ),
    ] = None,
    json_out: JsonOut = None,
) -> None:
    """Score engines on DAVIS-style video: J (region IoU), F (boundary) and J&F, as DAVIS 2017 does.

    Each object of a sequence's first annotation is propagated from that mask alone; the first and last
    frames are not scored; means over all objects. Palette annotations: 0 background, 255 void (ignored).

    Example: vggts eval vos --data DAVIS --sequences DAVIS/ImageSets/480p/train.txt --engine classic
    """
    from vggts_cli.eval.report import vos_table
    from vggts_cli.eval.vos import engine_calls, evaluate_vos, sequence_names

    names = sequence_names(data, sequences)
    engines = _engines(engine or _default_engines(), model, device.value, adapt, detail)
    total = engine_calls(data, names, max_frames) * len(engines)
    result = _counted("frames", total, lambda tick: evaluate_vos(engines, data, names, max_frames, tick))
    _emit(result, json_out, vos_table(result))


@app.command()
@one_line_errors
def pairs(
    data: Annotated[
        Path,
        typer.Option(
            metavar="DIR",
            help="A pair-set folder with pairs.json (python -m vggts_cli.eval.pairs makes one).",
        ),
    ],
    engine: EngineNames = None,
    model: ModelName = None,
    device: LearnedDevice = Device.auto,
    adapt: AdaptSteps = None,
    detail: DetailLevel = None,
    json_out: JsonOut = None,
) -> None:
    """Score engines on real two-view pairs: the mask in view A, the object (or its absence) in view B.

    Per group and overall: IoU and boundary F where the target shows the object, and the visibility
    balanced accuracy of the presence score (> 0.5 = present) over targets with and without it.

    Example: vggts eval pairs --data real_pairs/ --engine classic --engine vggts --json pairs.json
    """
    from vggts_cli.eval.pairs import evaluate_pairs, load_pairs
    from vggts_cli.eval.report import pairs_table

    pair_list = load_pairs(data)
    engines = _engines(engine or _default_engines(), model, device.value, adapt, detail)
    total = len(pair_list) * len(engines)
    result = _counted("pairs", total, lambda tick: evaluate_pairs(engines, pair_list, tick))
    result = {"data": str(data), "pairs": len(pair_list), **result}
    _emit(result, json_out, pairs_table(result, f"Real two-view pairs: {data} ({len(pair_list)} pairs)"))


@egoexo_app.command()
@one_line_errors
def score(
    gt: Annotated[
        Path, typer.Option(metavar="FILE", help="Processed ground truth (process_annotations.py's output).")
    ],
    pred: Annotated[
        Path,
        typer.Option(
            metavar="FILE", help="Predictions: an 'ego-exo' and/or 'exo-ego' block (e.g. submission.json)."
        ),
    ],
    json_out: JsonOut = None,
) -> None:
    """Score a prediction file as the official Ego-Exo4D evaluator does, for each direction it holds.

    Prints visibility balanced accuracy, IoU, location error and contour accuracy (plain means).

    Also the paper's visible-pairs mIoU (×100), over frames with the object in both views.

    Predicted masks must be at the evaluator's size: the ground truth's, resized to longest side 480.

    Example: vggts eval egoexo score --gt correspondence-gt.json --pred submission.json
    """
    from vggts_cli.eval.egoexo import GroundTruth, directions_in, load_json, scored_frames
    from vggts_cli.eval.egoexo import score as score_predictions
    from vggts_cli.eval.report import egoexo_table

    truth, preds = GroundTruth.load(gt), load_json(pred, "predictions")
    total = scored_frames(truth, directions_in(preds, str(pred)))
    scores = _counted("frames", total, lambda tick: score_predictions(truth, preds, str(pred), tick))
    result = {"gt": str(gt), "pred": str(pred), "scores": scores}
    _emit(result, json_out, egoexo_table(scores, f"Ego-Exo4D correspondence: {pred}"))


@egoexo_app.command()
@one_line_errors
def run(
    gt: Annotated[
        Path,
        typer.Option(metavar="FILE", help="Processed ground truth: supplies the query masks and frames."),
    ],
    takes: Annotated[
        Path,
        typer.Option(
            metavar="DIR", help="Folder of takes: TAKES/<take_name>/frame_aligned_videos/<camera>.mp4."
        ),
    ],
    out: Annotated[
        Path, typer.Option(metavar="FILE", help="Prediction file to write (EvalAI submission format).")
    ],
    engine: Annotated[str, typer.Option(metavar="NAME", help=ENGINE_HELP)] = "classic",
    model: ModelName = None,
    device: Annotated[Device, typer.Option(help="Where the model runs.")] = Device.auto,
    adapt: AdaptSteps = None,
    detail: DetailLevel = None,
    relations: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="The raw relations_<split>.json, to find each take's folder by its take_name "
            "[default: none: folders named by take id].",
        ),
    ] = None,
    direction: Annotated[Direction, typer.Option(help="Which direction(s) to predict.")] = Direction.both,
) -> None:
    """Predict every query of the ground truth with an engine and write the prediction file.

    Per query: the engine sees the target frame, and the source frame with its ground-truth mask.

    Masks are stored at the evaluator's size, the presence score as confidence.

    Score the file with `vggts eval egoexo score`.

    Example: vggts eval egoexo run --gt gt.json --takes takes/ --engine vggts --out submission.json
    """
    from vggts_cli.eval.egoexo import DIRECTIONS, GroundTruth
    from vggts_cli.eval.egoexo_predict import EgoExoPredictor, read_take_names

    directions = DIRECTIONS if direction is Direction.both else (direction.value,)
    names = read_take_names(relations) if relations is not None else None
    truth = GroundTruth.load(gt)
    seg_engine = _engines([engine], model, device.value, adapt, detail)[engine]
    predictor = EgoExoPredictor(truth, takes, seg_engine, directions, names)
    submission = _counted("queries", predictor.segment_calls(), predictor.run)
    write_text(out, json.dumps(submission) + "\n")
    calls, where = predictor.segment_calls(), ", ".join(directions)
    report(f"{calls} queries of {len(truth.takes)} takes ({where}) -> {out}")
