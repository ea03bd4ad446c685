"""The job's progress on disk: one JSON line per segmented frame, so `--resume` continues after a kill.

Layout: OUTDIR/.vggts/journal.jsonl. The first line is a header with the job's fingerprint (inputs, seed,
offsets, engine, model); then `{"cam": c, "frame": i, "score": s, "counts": rle}` per frame, in walk
order. A line cut short by a kill is ignored. Because the walk is deterministic and the engine's only
carried state is the binary masks written here, replaying the journal and continuing gives the same masks
as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vggts_cli.errors import UsageError

STATE_DIR = ".vggts"  # OUT/.vggts/ holds the journal


class Journal:
    """Append-only record of per-frame results, keyed by (camera index, frame index)."""

    def __init__(self, out_dir: Path, fingerprint: dict, resume: bool) -> None:
        self.path = out_dir / STATE_DIR / "journal.jsonl"
        self.done_path = out_dir / STATE_DIR / "complete"
        self.records: dict[tuple[int, int], tuple[str, float]] = {}
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
            raise UsageError(
                f"{self.path.parent.parent} holds a different job (inputs or options changed); "
                "use another --out folder or --overwrite"
            )
        valid = len(lines[0]) + 1
        for line in lines[1:]:
            try:
                rec = json.loads(line)
                self.records[(rec["cam"], rec["frame"])] = (rec["counts"], rec["score"])
            except (json.JSONDecodeError, KeyError, TypeError):
                break  # the tail cut short by a kill; everything after it is rewritten
            valid += len(line) + 1
        with self.path.open("r+", encoding="utf-8") as f:
            f.truncate(valid)

    @property
    def complete(self) -> bool:
        return self.done_path.exists()

    def get(self, cam: int, frame: int) -> tuple[str, float] | None:
        return self.records.get((cam, frame))

    def append(self, cam: int, frame: int, counts: str, score: float) -> None:
        self.records[(cam, frame)] = (counts, score)
        self._file.write(json.dumps({"cam": cam, "frame": frame, "score": score, "counts": counts}) + "\n")

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def mark_complete(self) -> None:
        self.flush()
        self.done_path.touch()

    def close(self) -> None:
        self._file.close()
