"""Loaded by every Python process of the test Ray cluster (tests/test_batch.py puts this folder on its
PYTHONPATH). A job worker whose journal passes KILL_AFTER frames while `OUT/kill-one-worker` exists removes
that marker and SIGKILLs itself: the test kills a worker at a known point of a live job, with no polling
that could race the job. The unlink decides which worker, so exactly one dies."""

from __future__ import annotations

import os
import signal

KILL_AFTER = 30  # frames in the journal (the old polling version waited for more than 30 lines)
MARKER = "kill-one-worker"

if os.environ.get("VGGTS_TEST_KILL_ONE_WORKER"):
    from vggts_cli.pipeline.journal import Entry, Journal

    _append = Journal.append_round

    def _append_then_maybe_die(self: Journal, entries: dict[tuple[int, int], Entry]) -> None:
        _append(self, entries)
        if len(self.records) < KILL_AFTER:
            return
        try:
            (self.path.parents[2] / MARKER).unlink()  # OUT/<id>/.vggts/journal.jsonl -> OUT/kill-one-worker
        except FileNotFoundError:
            return
        self.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    Journal.append_round = _append_then_maybe_die  # type: ignore[method-assign]
