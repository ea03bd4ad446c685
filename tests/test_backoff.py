"""Window sizing from free memory, and the out-of-memory back-off that halves the window and finishes."""

from __future__ import annotations

from itertools import count, islice

import pytest
import torch

from vggts_cli.engines.learned.backoff import (
    WindowBackoff,
    free_cuda_memory,
    window_from_memory,
)


def run_windowed(fn, items, window, min_window=1, **log):
    """One stream through its own back-off (what the engine does with its persistent one)."""
    return WindowBackoff(window, min_window, **log).run(fn, items)


GIB = 2**30


def test_window_from_memory_fits_frames_after_the_reserve():
    assert window_from_memory(10 * GIB, GIB, 2 * GIB, 1, 24) == 8
    assert window_from_memory(100 * GIB, GIB, 2 * GIB, 1, 24) == 24  # capped at hi
    assert window_from_memory(GIB, GIB, 2 * GIB, 2, 24) == 2  # nothing fits: lo, the back-off takes over
    assert window_from_memory(None, GIB, 2 * GIB, 2, 16) == 16  # no memory figure (CPU)


@pytest.mark.parametrize("args", [(GIB, 0, 0, 1, 4), (GIB, 1, 0, 0, 4), (GIB, 1, 0, 5, 4)])
def test_window_from_memory_rejects_bad_bounds(args):
    with pytest.raises(ValueError):
        window_from_memory(*args)


def test_free_cuda_memory():
    assert free_cuda_memory(torch.device("cpu")) is None
    if torch.cuda.is_available():
        free = free_cuda_memory(torch.device("cuda"))
        assert 0 < free <= torch.cuda.mem_get_info()[1]


class OomAbove:
    """A window function that runs out of memory on windows of more than `limit` items."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.calls: list[list[int]] = []

    def __call__(self, window):
        self.calls.append(list(window))
        if len(window) > self.limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory on {len(window)} frames")
        return [10 * x for x in window]


def test_halves_until_it_fits_and_keeps_the_smaller_window():
    fn, lines = OomAbove(3), []
    out = list(run_windowed(fn, range(20), window=16, log=lines.append))
    assert out == [10 * x for x in range(20)]
    sizes = [len(c) for c in fn.calls]
    assert sizes == [16, 8, 4] + [2] * 10
    assert fn.calls[3][0] == 0  # the failed window's items are retried first
    assert len(lines) == 3 and all("\n" not in line and "out of memory" in line for line in lines)
    assert lines[0].endswith("windows of 8") and lines[-1].endswith("windows of 2")


def test_window_carries_over_to_the_next_stream():
    backoff = WindowBackoff(8, log=None)
    fn = OomAbove(5)
    assert list(backoff.run(fn, range(10))) == [10 * x for x in range(10)]
    assert backoff.window == 4
    fn.calls.clear()
    assert list(backoff.run(fn, range(10, 19))) == [10 * x for x in range(10, 19)]
    assert [len(c) for c in fn.calls] == [4, 4, 1]  # no out-of-memory paid twice


def test_never_below_min_window_then_raises():
    fn = OomAbove(1)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        list(run_windowed(fn, range(10), window=8, min_window=2, log=None))
    assert [len(c) for c in fn.calls] == [8, 4, 2]


def test_short_last_window_backs_off_from_its_own_size():
    calls = []

    def fails_on_three(window):
        calls.append(len(window))
        if len(window) == 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return list(window)

    backoff = WindowBackoff(4, log=None)
    assert list(backoff.run(fails_on_three, range(7))) == list(range(7))
    assert calls == [4, 3, 1, 1, 1]
    assert backoff.window == 1


def test_streams_lazily_one_window_ahead():
    fn = OomAbove(100)
    first = list(islice(run_windowed(fn, count(), window=4, log=None), 6))
    assert first == [0, 10, 20, 30, 40, 50]
    assert fn.calls == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_other_errors_pass_through_without_retry():
    calls = []

    def broken(window):
        calls.append(len(window))
        raise RuntimeError("not a memory problem")

    with pytest.raises(RuntimeError, match="not a memory"):
        list(run_windowed(broken, range(8), window=8, log=None))
    assert calls == [8]


def test_one_result_per_item():
    with pytest.raises(ValueError, match="2 results for 4 items"):
        list(run_windowed(lambda w: w[:2], range(4), window=4, log=None))


def test_default_log_is_one_stderr_line(capsys):
    list(run_windowed(OomAbove(2), range(4), window=4))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vggts: warning: CUDA out of memory")
