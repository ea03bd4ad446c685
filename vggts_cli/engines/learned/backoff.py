"""Backbone windows sized to free accelerator memory, and a CUDA out-of-memory that finishes the job.

The window (frames the backbone sees at once) is chosen from free memory before the job starts
(`window_from_memory`). Activations also depend on things that estimate cannot see (fragmentation, other
processes on the GPU), so `WindowBackoff` catches an out-of-memory on a window, halves the window, retries
the same frames and keeps the smaller window for the rest of the job: slower, but finished.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

LogFn = Callable[[str], None]


def _to_stderr(line: str) -> None:
    print(f"vggts: warning: {line}", file=sys.stderr, flush=True)


def free_cuda_memory(device: torch.device) -> int | None:
    """Bytes a new allocation on `device` can use: the driver's free memory plus what PyTorch's caching
    allocator holds but does not use (it hands that out first). None when `device` is not CUDA."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def window_from_memory(free_bytes: int | None, bytes_per_frame: int, reserve: int, lo: int, hi: int) -> int:
    """The most frames in [lo, hi] whose `bytes_per_frame` fit in `free_bytes` less `reserve`.

    lo when not even lo fit (the back-off takes over from there); hi when `free_bytes` is None (the CPU:
    no memory figure to go by).
    """
    if bytes_per_frame <= 0 or not 1 <= lo <= hi:
        raise ValueError(f"need bytes_per_frame > 0 and 1 <= lo <= hi, got {bytes_per_frame}, {lo}, {hi}")
    if free_bytes is None:
        return hi
    return max(lo, min(hi, (free_bytes - reserve) // bytes_per_frame))


class WindowBackoff:
    """Applies a function to consecutive windows of a stream, halving the window on CUDA out-of-memory.

    `window` is the current size; it only shrinks, and one instance carries it across `run` calls (a job's
    legs and cameras), so a job pays for each out-of-memory once.
    """

    def __init__(self, window: int, min_window: int = 1, log: LogFn | None = _to_stderr) -> None:
        if not 1 <= min_window <= window:
            raise ValueError(f"need 1 <= min_window <= window, got min_window {min_window}, window {window}")
        self.window = window
        self.min_window = min_window
        self._log = log

    def run(self, fn: Callable[[Sequence[T]], Sequence[R]], items: Iterable[T]) -> Iterator[R]:
        """Yield fn's results item by item, in item order; `fn` maps a window (list of up to `window`
        items) to one result per item. Items are read lazily, one window ahead of what fn has done.

        Raises the out-of-memory error when a window of `min_window` items (or a shorter last window) fails.
        """
        source = iter(items)
        pending: list[T] = []
        while True:
            pending.extend(islice(source, max(0, self.window - len(pending))))
            if not pending:
                return
            batch = pending[: self.window]
            results = self._apply(fn, batch)
            if results is None:  # out of memory: the same items again, in a smaller window
                continue
            del pending[: len(batch)]
            yield from results

    def _apply(self, fn: Callable[[Sequence[T]], Sequence[R]], batch: list[T]) -> list[R] | None:
        """fn(batch) as a list, or None after an out-of-memory that shrank the window."""
        try:
            results = list(fn(batch))
        except torch.cuda.OutOfMemoryError:
            if len(batch) <= self.min_window:
                raise
        else:
            if len(results) != len(batch):
                raise ValueError(f"the window function gave {len(results)} results for {len(batch)} items")
            return results
        # Out of the except block, the error's traceback (and the activations its frames held) is gone, so
        # emptying the cache can give that memory back before the retry.
        torch.cuda.empty_cache()
        self.window = max(self.min_window, len(batch) // 2)
        if self._log is not None:
            self._log(
                f"CUDA out of memory on a window of {len(batch)}; continuing with windows of {self.window}"
            )
        return None
