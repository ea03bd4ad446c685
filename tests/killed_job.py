"""`python tests/killed_job.py N ARGS...`: `vggts ARGS...`, SIGKILLed by itself the moment its journal
holds N segmented frames — a kill at a known point of a live job, with no polling that could race it."""

from __future__ import annotations

import os
import signal
import sys

from vggts_cli.pipeline.journal import Journal

frames = int(sys.argv.pop(1))
append = Journal.append


def append_then_die(self: Journal, cam: int, frame: int, counts: str, score: float) -> None:
    append(self, cam, frame, counts, score)
    if len(self.records) >= frames:
        self.flush()  # what a run killed right after this frame's round would have on disk
        os.kill(os.getpid(), signal.SIGKILL)


Journal.append = append_then_die  # type: ignore[method-assign]
sys.argv[0] = "vggts"

from vggts_cli.cli.app import main  # noqa: E402

main()
