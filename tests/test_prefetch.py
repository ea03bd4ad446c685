"""`prefetch`: decoded frames from a background thread, in order, with errors and early stops handled."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from media import make_video, read_index

from vggts_cli.errors import VggtsError
from vggts_cli.video.prefetch import prefetch
from vggts_cli.video.reader import VideoReader, probe


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return probe(make_video(tmp_path_factory.mktemp("prefetch") / "v.mp4", frames=24))


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "vggts-prefetch"]


def test_same_frames_in_the_same_order(video):
    with VideoReader(video) as reader:
        direct = [(f.index, f.image) for f in reader.frames()]
    with VideoReader(video) as reader:
        fetched = [(f.index, f.image) for f in prefetch(reader.frames(), depth=3)]
    assert [i for i, _ in fetched] == list(range(video.num_frames))
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(direct, fetched, strict=True))
    assert [read_index(image) for _, image in fetched] == list(range(video.num_frames))
    assert not prefetch_threads()


def test_decodes_on_another_thread(video):
    decoded_on: set[str] = set()

    def frames(reader: VideoReader):
        for frame in reader.frames(0, 5):
            decoded_on.add(threading.current_thread().name)
            yield frame

    with VideoReader(video) as reader:
        assert len(list(prefetch(frames(reader)))) == 5
    assert decoded_on == {"vggts-prefetch"}


def test_producer_error_is_raised_in_the_consumer_after_the_good_frames(video):
    def failing(reader: VideoReader):
        yield from reader.frames(0, 3)
        raise VggtsError("decode error near frame 3")

    got = []
    with VideoReader(video) as reader, pytest.raises(VggtsError, match="near frame 3"):
        for frame in prefetch(failing(reader), depth=2):
            got.append(frame.index)
    assert got == [0, 1, 2]
    assert not prefetch_threads()


def test_early_break_closes_the_source_and_ends_the_thread(video):
    closed = threading.Event()

    def frames(reader: VideoReader):
        try:
            yield from reader.frames()
        finally:
            closed.set()

    with VideoReader(video) as reader:
        for frame in prefetch(frames(reader), depth=2):
            if frame.index == 4:
                break
        # The loop held the only reference: leaving it closed the prefetch generator, which joined.
        assert closed.is_set()
        assert not prefetch_threads()
        # The reader is free again: nothing decodes behind our back.
        assert [read_index(f.image) for f in reader.frames(10, 13)] == [10, 11, 12]


def test_close_before_the_end_with_a_full_queue(video):
    with VideoReader(video) as reader:
        frames = prefetch(reader.frames(), depth=1)
        assert next(frames).index == 0
        frames.close()
        assert not prefetch_threads()


def test_stays_at_most_depth_ahead():
    depth, pulled, taken = 3, [0], [0]
    ahead: list[int] = []
    moved = threading.Condition()

    def source():
        for i in range(50):
            with moved:
                pulled[0] += 1
                ahead.append(pulled[0] - taken[0])
                moved.notify_all()
            yield i

    got = []
    for item in prefetch(source(), depth=depth):
        with moved:
            taken[0] += 1
            if item == 0:  # let the producer run ahead as far as it may
                assert moved.wait_for(lambda: pulled[0] >= depth + 1, timeout=30)
        got.append(item)
    assert got == list(range(50))
    # Pulled but not yet counted as taken: `depth` queued, plus one while the consumer's count lags.
    assert depth <= max(ahead) <= depth + 1


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth"):
        prefetch([1, 2], depth=0)
