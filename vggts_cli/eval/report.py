"""`vggts eval` results as rich tables (the JSON form is the result dict itself)."""

from __future__ import annotations

from rich.table import Table


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _recalls(summary: dict) -> str:
    """The visibility call's two recalls, "there/absent"."""
    return f"{_num(summary['recall_there'], 2)}/{_num(summary['recall_absent'], 2)}"


RECALLS_NOTE = (
    "there/absent: the share of targets showing the object called there, and of targets without it "
    "called absent (vis is their mean)."
)


def metrics_cell(summary: dict) -> str:
    """A multi-line cell: paper mIoU, the four Ego-Exo4D metrics, time per pair when known."""
    lines = [
        f"mIoU {_num(summary['visible_miou'], 1)} ({summary['visible_pairs']} pairs)",
        f"IoU {_num(summary['iou'])}  F {_num(summary['contour_accuracy'])}",
        f"LE {_num(summary['location_error'])}  vis {_num(summary['balanced_accuracy'])}",
        f"there/absent {_recalls(summary)}",
    ]
    if summary.get("seconds_per_pair") is not None:
        lines.append(f"{summary['seconds_per_pair']:.3f} s/pair")
    return "\n".join(lines)


def rendered_table(result: dict) -> Table:
    """`evaluate_rendered`'s result: rows tier × direction, one column per engine."""
    table = Table(
        title=f"Rendered validation scenes, {result['pairs']} pairs per tier",
        caption=(
            "mIoU: mean IoU ×100 over pairs visible in both views (paper protocol). Ego-Exo4D metrics at "
            "the evaluator's size: IoU, F = contour accuracy, LE = location error (lower is better), "
            "vis = visibility balanced accuracy; " + RECALLS_NOTE
        ),
        show_lines=True,
    )
    table.add_column("tier")
    table.add_column("direction")
    for engine in result["engines"]:
        table.add_column(engine)
    for tier in result["tiers"]:
        for direction in result["directions"]:
            cells = result["results"][tier][direction]
            table.add_row(tier, direction, *(metrics_cell(cells[e]) for e in result["engines"]))
    return table


def egoexo_table(scores: dict[str, dict], title: str) -> Table:
    """`egoexo.score`'s result: one row per direction, the official metrics in the evaluator's order."""
    table = Table(
        title=title,
        caption="Plain means (not percentages) but the visible-pairs mIoU (paper protocol, ×100); the "
        "JSON form also has the balanced accuracy's two recalls.",
    )
    columns = (
        "direction",
        "visibility bal. acc",
        "IoU",
        "location error (lower better)",
        "contour acc",
        "visible-pairs mIoU",
        "frames (visible)",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "direction" else "right")
    for direction, s in scores.items():
        table.add_row(
            direction,
            _num(s["balanced_accuracy"]),
            _num(s["iou"]),
            _num(s["location_error"]),
            _num(s["contour_accuracy"]),
            _num(s["visible_miou"], 1),
            f"{s['frames']} ({s['visible_frames']})",
        )
    return table


def vos_table(result: dict) -> Table:
    """`evaluate_vos`'s result: one row per engine, the DAVIS global figures."""
    frames = "all frames" if result["max_frames"] is None else f"first {result['max_frames']} frames"
    table = Table(
        title=f"VOS: {len(result['sequences'])} sequences of {result['data']} ({frames})",
        caption=(
            "DAVIS 2017 semi-supervised protocol: first-frame mask, first and last frame not scored; "
            "J = region IoU, F = boundary F-measure; means and recalls (> 0.5) over objects."
        ),
    )
    columns = ("engine", "J&F", "J mean", "J recall", "F mean", "F recall", "objects", "frames", "s/frame")
    for column in columns:
        table.add_column(column, justify="left" if column == "engine" else "right")
    scores = ("J&F", "J_mean", "J_recall", "F_mean", "F_recall")
    for engine, s in result["results"].items():
        measured = [_num(s[key]) for key in scores]
        table.add_row(engine, *measured, str(s["objects"]), str(s["frames"]), _num(s["seconds_per_frame"]))
    return table


def pairs_table(result: dict, title: str) -> Table:
    """`evaluate_pairs`'s result: rows engine × group (and all), IoU, boundary F, visibility accuracy."""
    table = Table(
        title=title,
        caption=(
            "IoU and F over pairs whose target shows the object (void ignored); IoU if said there: a "
            "prediction whose presence score is ≤ 0.5 counts as empty; vis = visibility balanced accuracy; "
            + RECALLS_NOTE
        ),
        pad_edge=False,
    )
    # Within 80 columns, nothing cut: the headers wrap at spaces, the numbers' columns are no wider than
    # their cells, and the recalls go under the accuracy they make up.
    numbers = ("there / absent", "IoU", "IoU if said there", "F", "vis (there / absent)", "s/pair")
    table.add_column("engine")
    table.add_column("pairs", min_width=12)
    for column in numbers:
        table.add_column(column, justify="right", max_width=9 if column.startswith("vis") else 6)
    for engine, groups in result["results"].items():
        for group, s in groups.items():
            keys = ("iou", "iou_presence", "boundary_f")
            table.add_row(
                engine,
                group,
                f"{s['present']}/{s['absent']}",
                *[_num(s[key]) for key in keys],
                f"{_num(s['balanced_accuracy'])}\n{_recalls(s)}",
                _num(s["seconds_per_pair"]),
            )
    return table
