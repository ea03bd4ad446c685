"""The JOBS manifest of `vggts batch`: one `vggts propagate` job a row, every row checked before any work.

Two formats, told apart by the file's suffix (`.csv`; `.jsonl`, `.ndjson` or `.json`) or, failing that, by its
first character (`{` = JSON Lines). Columns (CSV header) or keys (JSON object) mirror the options of
`vggts propagate`:

    id, src, dst, mask, mask_frame, offsets, write, redact, margin, blur, pixel_size, hold, min_score,
    spread, grow, redact_objects, fill_color, overlay_color, start_number, alpha_format, engine, model,
    adapt, detail, fps

`src` and `dst` take videos or image sequences (`fps`: their frame rate, as `--fps`).
`id`, `src` and `mask` are required (no `dst`: one camera); an empty CSV cell takes the option's default.
A CSV cell with several values (`dst`, `mask`, `offsets`, `write`, `redact_objects`) separates them with
`;` (`write` also takes commas, as on the command line); in JSON they may be lists, and `offsets` an object
`{"exo": 0.4}`. Relative paths are taken from the manifest's folder. The id names the job's output folder
OUTDIR/<id>.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from vggts_cli.engines.registry import ENGINES, check_model, default_engine
from vggts_cli.errors import UsageError, VggtsError
from vggts_cli.jobs import DEFAULT_WRITE, PropagateJob, check_job, fingerprint, parse_list, parse_offsets
from vggts_cli.prompts import parse_masks
from vggts_cli.sinks.base import SinkOptions
from vggts_cli.video.sequence import DEFAULT_FPS, parse_fps

COLUMNS = (
    "id",
    "src",
    "dst",
    "mask",
    "mask_frame",
    "offsets",
    "write",
    "redact",
    "margin",
    "blur",
    "pixel_size",
    "hold",
    "min_score",
    "spread",
    "grow",
    "redact_objects",
    "fill_color",
    "overlay_color",
    "start_number",
    "alpha_format",
    "engine",
    "model",
    "adapt",
    "detail",
    "fps",
)
REQUIRED = ("id", "src", "mask")
# Manifest column -> SinkOptions field (the command line's option names, as in `vggts propagate`).
SINK_FIELDS = {
    "redact": "redact_mode",
    "margin": "margin_px",
    "blur": "blur",
    "pixel_size": "pixel_block",
    "hold": "redact_hold",
    "min_score": "redact_min_score",
    "spread": "redact_spread",
    "grow": "redact_grow",
    "redact_objects": "redact_objects",
    "fill_color": "fill_color",
    "overlay_color": "overlay_color",
    "start_number": "start_number",
    "alpha_format": "alpha_format",
}
RESERVED_IDS = ("batch.json", "batch.part.json")  # the batch record lives next to the job folders


@dataclass(frozen=True)
class BatchJob:
    """A checked row: the job, where it came from, and what a complete run leaves in OUTDIR/<id>."""

    id: str
    where: str  # "jobs.csv:4", for messages
    job: PropagateJob
    outputs: tuple[str, ...]  # relative to job.out
    frames: int  # of all cameras
    spec: str  # digest of inputs and options: a recorded run counts only for the same spec


@dataclass(frozen=True)
class BadRow:
    id: str | None
    where: str
    error: str

    def __str__(self) -> str:
        who = f" (id {self.id})" if self.id else ""
        return f"{self.where}{who}: {self.error}"


def load_manifest(path: Path, out: Path, resume: bool = False) -> tuple[list[BatchJob], list[BadRow]]:
    """Parse and check every row of `path` for outputs under `out`; rows in file order.

    A row is bad when `check_job` (the checks of `vggts propagate`) or the manifest's own checks reject it.
    Raises UsageError for a manifest that cannot be read at all (missing, no rows, unknown CSV column).
    """
    if not path.is_file():
        raise UsageError(f"manifest {path}: no such file")
    base = path.resolve().parent
    jobs: list[BatchJob] = []
    bad: list[BadRow] = []
    seen: dict[str, str] = {}  # case-folded id -> where; ids are folder names on case-insensitive disks too
    for where, row in _rows(path):
        row_id = row.get("id")
        row_id = str(row_id).strip() if row_id is not None else None
        try:
            if "__error__" in row:  # a row that could not be read at all
                raise UsageError(row["__error__"])
            job_id = _check_id(row_id, seen)
            seen[job_id.casefold()] = where
            jobs.append(_checked(job_id, where, row, base, out, resume))
        except Exception as e:  # one line per row, whatever went wrong with it
            message = str(e) if isinstance(e, VggtsError) else f"{type(e).__name__}: {e}"
            bad.append(BadRow(row_id or None, where, (message.splitlines() or [""])[0]))
    if not jobs and not bad:
        raise UsageError(f"manifest {path} holds no jobs")
    return jobs, bad


def _rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) per non-empty row; keys normalised to lower_snake."""
    text = path.read_text(encoding="utf-8-sig")
    suffix = path.suffix.lower()
    json_lines = suffix in (".jsonl", ".ndjson", ".json") or (
        suffix != ".csv" and text.lstrip().startswith("{")
    )
    if json_lines:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                row = {"__error__": f"not a JSON object ({e.msg} at column {e.colno})"}
            if not isinstance(row, dict):
                row = {"__error__": "not a JSON object"}
            yield f"{path.name}:{number}", {_key(k): v for k, v in row.items()}
        return
    reader = csv.DictReader(text.splitlines(keepends=True), skipinitialspace=True)
    if not reader.fieldnames:
        raise UsageError(f"manifest {path} is empty; its first line names the columns: {', '.join(COLUMNS)}")
    unknown = [c for c in reader.fieldnames if _key(c) not in COLUMNS]
    if unknown:
        raise UsageError(f"manifest {path}: unknown column {unknown[0]!r}; columns are {', '.join(COLUMNS)}")
    for row in reader:
        values = {_key(k): v for k, v in row.items() if k is not None and v not in (None, "")}
        if None in row:
            values["__error__"] = "more cells than the header has columns"
        yield f"{path.name}:{reader.line_num}", values


def _key(name: object) -> str:
    return str(name).strip().lower().replace("-", "_")


def _check_id(value: str | None, seen: dict[str, str]) -> str:
    if not value:
        raise UsageError("no id; every job needs one (it names the output folder)")
    if any(c in value for c in "/\\") or value.startswith(".") or not value.isprintable():
        raise UsageError(f"id {value!r} must be a plain folder name: no / or \\, not starting with '.'")
    if value in RESERVED_IDS:
        raise UsageError(f"id {value!r} is reserved for the batch record; choose another")
    if value.casefold() in seen:
        raise UsageError(f"id {value!r} is already used on {seen[value.casefold()]}; ids must be unique")
    return value


def _checked(job_id: str, where: str, row: dict[str, Any], base: Path, out: Path, resume: bool) -> BatchJob:
    """The row as a prepared `PropagateJob` for OUTDIR/<id>; raises UsageError/VggtsError if it is bad."""
    unknown = [k for k in row if k not in COLUMNS]
    if unknown:
        raise UsageError(f"unknown key {unknown[0]!r}; keys are {', '.join(COLUMNS)}")
    missing = [k for k in REQUIRED if row.get(k) in (None, "", [])]
    if missing:
        raise UsageError(f"no {missing[0]}")
    engine = str(row.get("engine") or default_engine()).strip()
    seeds, prompts = parse_masks(_items(row["mask"]))
    job = PropagateJob(
        src=_path(row["src"], base),
        dsts=tuple(_path(v, base) for v in _items(row.get("dst") or [])),
        masks=tuple(_path(v, base) for v in seeds),
        prompts=tuple(replace(p, path=_path(p.path, base)) for p in prompts),
        out=out / job_id,
        mask_frame=_number(row, "mask_frame", int, 0),
        write=parse_list(",".join(_items(row.get("write", ",".join(DEFAULT_WRITE))))),
        sink_options=_sink_options(row),
        engine=engine,
        model=_model(engine, row.get("model"), base),
        adapt=_adapt(engine, row),
        detail=_detail(engine, row),
        offsets=_offsets(row.get("offsets")),
        resume=resume,
        fps=DEFAULT_FPS if row.get("fps") in (None, "") else parse_fps(row["fps"], option="fps"),
    )
    prepared = check_job(job)
    spec = {**fingerprint(prepared), "write": job.write, "sink_options": asdict(job.sink_options)}
    return BatchJob(
        id=job_id,
        where=where,
        job=job,
        outputs=tuple(str(p.relative_to(job.out)) for p in prepared.outputs()),
        frames=sum(c.info.num_frames for c in prepared.cameras),
        spec=hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest(),
    )


def _items(value: Any) -> list[str]:
    """A list cell: a JSON list, or text separated by `;`."""
    values = value if isinstance(value, list) else str(value).split(";")
    return [str(v).strip() for v in values if str(v).strip()]


def _path(value: Any, base: Path) -> Path:
    return (base / Path(str(value).strip()).expanduser()).resolve()


def _number(row: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = row.get(key)
    if value is None or value == "":
        return default
    try:
        number = float(value) if not isinstance(value, bool) else None
        if number is None or (kind is int and not number.is_integer()):
            raise ValueError
        return kind(number)
    except ValueError:
        raise UsageError(
            f"{key} takes {'an integer' if kind is int else 'a number'}, got {value!r}"
        ) from None


def _offsets(value: Any) -> tuple[tuple[str, float], ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        value = [f"{name}={seconds}" for name, seconds in value.items()]
    return parse_offsets(_items(value), option="offsets")


def _sink_options(row: dict[str, Any]) -> SinkOptions:
    options: dict[str, Any] = {}
    for column, field in SINK_FIELDS.items():
        if row.get(column) in (None, ""):
            continue
        if column in ("margin", "hold", "spread", "start_number"):
            options[field] = _number(row, column, int, None)
        elif column in ("blur", "pixel_size", "min_score", "grow"):
            options[field] = _number(row, column, float, None)
        elif column == "redact_objects":
            options[field] = tuple(_items(row[column]))
        else:
            options[field] = str(row[column]).strip()
    return SinkOptions(**options)


def _adapt(engine: str, row: dict[str, Any]) -> int | None:
    """The adapt column (steps of the learned engine's tuning), checked for its engine; None: the default."""
    steps = _number(row, "adapt", int, None)
    check_model([engine], None, flag="", adapt=steps)
    return steps


def _detail(engine: str, row: dict[str, Any]) -> str | None:
    """The detail column (the classic engine's working size), checked for its engine; None: the default."""
    value = row.get("detail")
    detail = str(value).strip() if value not in (None, "") else None
    check_model([engine], None, flag="", detail=detail)
    return detail


def _model(engine: str, value: Any, base: Path) -> str | None:
    """The model column checked for its engine, without loading anything: a name or a file's full path."""
    if engine not in ENGINES:
        raise UsageError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    model = str(value).strip() if value not in (None, "") else None
    check_model([engine], model, flag="")
    if engine != "vggts":
        return None
    from vggts_cli.model.io import DEFAULT_MODEL, OFFICIAL_MODEL

    if model is None or model in (OFFICIAL_MODEL, DEFAULT_MODEL):
        return model  # None: the shipped model
    path = _path(model, base)
    if not path.is_file():
        raise UsageError(f"model {path}: no such file (a vggts .safetensors file or {OFFICIAL_MODEL!r})")
    return str(path)
