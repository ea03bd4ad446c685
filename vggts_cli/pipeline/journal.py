"""The job's progress on disk: one JSON line per segmented frame, so `--resume` continues after a kill.

Layout: OUTDIR/.vggts/journal.jsonl. The first line is a header with the job's fingerprint (inputs, seed,
offsets, options, engine, model); then one line per round of the walk,
`{"round": [{"cam": c, "frame": i, "objects": [{"counts": rle, "score": s, "state": engine state}, ...]},
...]}` (one entry per object, in the job's object order), so that a round is on disk whole or not at all
(its frames were computed together). A line cut short by a kill is
ignored. The walk is deterministic and the engine's carried state is the masks and the per-frame `state`
written here (`Engine.replay`), so replaying the journal and continuing gives the same masks as an
uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import NamedTuple

from vggts_cli.engines.base import FrameState
from vggts_cli.errors import UsageError
from vggts_cli.fsutil import write_text

STATE_DIR = ".vggts"  # OUT/.vggts/ holds the journal


def _difference(out: Path, header: object, fingerprint: dict) -> str:
    """One line naming the first option whose value differs from the journal's (an option printed only
    where it applies, such as --detail, is null where it is not printed)."""
    if not isinstance(header, dict) or not all(str(k).startswith("--") for k in [*header, *fingerprint]):
        return f"{out} holds a job of another vggts version or kind; use another --out or --overwrite"
    option = next(k for k in {**header, **fingerprint} if header.get(k) != fingerprint.get(k))
    if option in ("--src", "--dst"):
        return (
            f"{option} is not the input the journal in {out} was made from (other file or content); "
            "pass the same inputs or use --overwrite"
        )
    return (
        f"{option} differs from the journal in {out} ({json.dumps(header.get(option))} there, "
        f"{json.dumps(fingerprint.get(option))} now); pass the same options or use --overwrite"
    )


class Entry(NamedTuple):
    """One object in one segmented frame: its mask as COCO RLE counts, its presence score, the state of its
    engine after it."""

    counts: str
    score: float
    state: FrameState | None = None


class Journal:
    """Append-only record of per-frame results, keyed by (camera index, frame index): one Entry per object."""

    def __init__(self, out_dir: Path, fingerprint: dict, resume: bool) -> None:
        self.path = out_dir / STATE_DIR / "journal.jsonl"
        self.done_path = out_dir / STATE_DIR / "complete"
        self.records: dict[tuple[int, int], tuple[Entry, ...]] = {}
        if resume and self.path.exists():
            self._load(fingerprint)
            self._file = self.path.open("a", encoding="utf-8")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.done_path.unlink(missing_ok=True)
            self._file = self.path.open("w", encoding="utf-8")
            self._file.write(json.dumps({"job": fingerprint}) + "\n")
            self.flush()

    def _load(self, fingerprint: dict) -> None:
        lines = self.path.read_text(encoding="utf-8").split("\n")
        try:
            header = json.loads(lines[0])["job"]
        except (json.JSONDecodeError, KeyError, IndexError):
            header = None
        if header != fingerprint:
            raise UsageError(f"--resume: {_difference(self.path.parent.parent, header, fingerprint)}")
        valid = len(lines[0]) + 1
        for line in lines[1:]:
            try:
                entries = {
                    (r["cam"], r["frame"]): tuple(
                        Entry(e["counts"], e["score"], e["state"]) for e in r["objects"]
                    )
                    for r in json.loads(line)["round"]
                }
            except (json.JSONDecodeError, KeyError, TypeError):
                break  # the tail cut short by a kill; everything after it is rewritten
            self.records.update(entries)
            valid += len(line) + 1
        with self.path.open("r+", encoding="utf-8") as f:
            f.truncate(valid)

    @property
    def complete(self) -> bool:
        return self.done_path.exists()

    def get(self, cam: int, frame: int) -> tuple[Entry, ...] | None:
        return self.records.get((cam, frame))

    def append_round(self, entries: dict[tuple[int, int], tuple[Entry, ...]]) -> None:
        """Record the frames of one round, keyed by (camera, frame), as one line."""
        self.records.update(entries)
        line = [
            {"cam": c, "frame": f, "objects": [e._asdict() for e in objects]}
            for (c, f), objects in entries.items()
        ]
        self._file.write(json.dumps({"round": line}) + "\n")

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def mark_complete(self) -> None:
        self.flush()
        self.done_path.touch()

    def close(self) -> None:
        self._file.close()


OUTPUTS_RECORD = "outputs.json"  # OUT/.vggts/outputs.json: the outputs vggts wrote there (relative paths)


def _recorded(out: Path) -> list[str]:
    try:
        return list(json.loads((out / STATE_DIR / OUTPUTS_RECORD).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return []


def _record(out: Path, names: list[str]) -> None:
    write_text(out / STATE_DIR / OUTPUTS_RECORD, json.dumps(sorted(set(names))))


def replace_earlier_outputs(out: Path, outputs: list[Path]) -> None:
    """Before a job's outputs are renamed into place: remove every output an earlier job in `out` recorded
    that this job does not write (same names are replaced by the rename), and camera folders left empty;
    then record this job's outputs. Only what vggts recorded is touched; the record always covers every
    output on disk, whenever a kill comes."""
    new = [str(p.relative_to(out)) for p in outputs]
    earlier = _recorded(out)
    _record(out, earlier + new)
    for name in sorted(set(earlier) - set(new)):
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        folder = path.parent
        if folder != out and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    _record(out, new)
