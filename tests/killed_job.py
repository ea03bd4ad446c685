"""`python tests/killed_job.py ACTION POINT ARGS...`: `vggts ARGS...`, stopped by itself at a known point of a
live job, with no polling that could race it.

ACTION: INT, TERM or KILL (the signal it sends itself; SIGINT and SIGTERM go through the CLI's own handling),
or PAUSE (print "paused" on stdout and wait for a line on stdin, holding the job's lock meanwhile).
POINT: N (the moment its journal holds N segmented frames) or render:N (before the N-th frame it renders).
"""

from __future__ import annotations

import os
import signal
import sys

from vggts_cli.pipeline.journal import Entry, Journal
from vggts_cli.sinks.base import Sink

action = sys.argv.pop(1)
stage, _, count = sys.argv.pop(1).rpartition(":")
if action == "INT":
    # Ctrl-C as a terminal delivers it. Python leaves SIGINT ignored when it starts with it ignored (as a
    # background job of a non-interactive shell does, `cmd &`), and the job would then run to the end.
    signal.signal(signal.SIGINT, signal.default_int_handler)
frames = int(count)
done = False


def stop() -> None:
    """Do ACTION, once."""
    global done
    if done:
        return
    done = True
    if action == "PAUSE":
        print("paused", flush=True)
        sys.stdin.readline()
    else:
        os.kill(os.getpid(), signal.Signals[f"SIG{action}"])


if stage == "render":
    write = Sink.write
    rendered = 0

    def write_then_stop(self: Sink, *args: object) -> None:
        global rendered
        rendered += 1
        if rendered >= frames:
            stop()
        write(self, *args)  # type: ignore[arg-type]

    Sink.write = write_then_stop  # type: ignore[method-assign]
else:
    append_round = Journal.append_round

    def append_then_stop(self: Journal, entries: dict[tuple[int, int], Entry]) -> None:
        append_round(self, entries)
        if len(self.records) >= frames:
            self.flush()  # what a run stopped right after this round would have on disk
            stop()

    Journal.append_round = append_then_stop  # type: ignore[method-assign]

sys.argv[0] = "vggts"

from vggts_cli.cli.app import main  # noqa: E402

main()
