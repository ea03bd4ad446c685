"""Run an iterator (decoding, usually) in a background thread, a bounded number of items ahead.

PyAV releases the GIL inside FFmpeg (decoding, pixel conversion), so a decode thread overlaps with the
model on the main thread and the accelerator does not wait on I/O. The consumer sees the same items in the
same order, the producer's exception at the point where it happened in the stream, and stopping early (a
`break`, or closing the generator) ends the thread before control returns: the source may be reused right
after.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()  # the source is exhausted


class _Raised:
    """The producer's exception, carried across the queue to be raised in the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(iterable: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Yield the items of `iterable`, produced by a background thread at most `depth` items ahead.

    The source is iterated, and closed (generators: `close()`), on that thread only; the thread starts on
    the first `next` and is joined before this generator finishes, whichever way it finishes.
    """
    if depth < 1:
        raise ValueError(f"prefetch depth must be at least 1, got {depth}")
    return _prefetch(iterable, depth)


def _prefetch(iterable: Iterable[T], depth: int) -> Iterator[T]:
    # Slots bound the items in flight; the queue itself is unbounded so that the final marker (end or
    # exception) never blocks a producer whose consumer has gone.
    slots = threading.Semaphore(depth)
    items: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()

    def produce() -> None:
        source = None
        try:
            source = iter(iterable)
            while True:
                slots.acquire()
                if stop.is_set():
                    return
                try:
                    item = next(source)
                except StopIteration:
                    items.put(_END)
                    return
                items.put(item)
        except BaseException as error:  # every failure, raised again where the consumer is
            items.put(_Raised(error))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="vggts-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.error
            slots.release()
            yield item
    finally:
        stop.set()
        slots.release()  # wakes a producer waiting for a slot, which then sees `stop`
        thread.join()
