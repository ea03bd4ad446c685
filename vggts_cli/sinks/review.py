"""review.png: a contact sheet of the frames a person should check, and a plot of score and mask area.

The sheet shows, per camera, up to `PICKS` frames of each kind — the lowest presence scores (outside
held-over runs), the largest
mask changes from the previous frame (1 - IoU), and the first frame of the longest runs that the redaction
held over (sinks/cover.py: the engine was unsure there) — in frame order, each with the mask outlined (in
the overlay colour) and what redaction covers (yellow), its frame number, score and why it was picked.
Below them a plot over the whole video: the presence score (green, 0..1), the mask area (magenta, relative
to its largest), the held-over frames (yellow bands) and the picked frames (white ticks).

Frames are chosen while they stream past (bounded heaps), so memory holds a few thumbnails, never the
video.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vggts_cli.errors import VggtsError
from vggts_cli.fsutil import PartialOutput
from vggts_cli.masks.objects import ONE_OBJECT, TrackedObject, union
from vggts_cli.masks.ops import iou
from vggts_cli.sinks.base import Sink, SinkOptions
from vggts_cli.sinks.cover import CoverFrame, Covers
from vggts_cli.video.reader import Frame, VideoInfo

PICKS = 4  # frames of each kind
COLUMNS = 4
THUMB_WIDTH = 320
LABEL_HEIGHT = 22
GAP = 4
TITLE_HEIGHT = 28
PLOT_HEIGHT = 150
BACKGROUND = (24, 24, 24)
SCORE_COLOR, AREA_COLOR, HELD_COLOR = (60, 220, 90), (255, 0, 170), (240, 200, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def thumb_size(info: VideoInfo) -> tuple[int, int]:
    """(width, height) of one panel's picture: THUMB_WIDTH wide (or the video's width if smaller)."""
    width = min(THUMB_WIDTH, info.width)
    return width, max(1, round(width * info.height / info.width))


def sheet_size(info: VideoInfo, panels: int) -> tuple[int, int]:
    """(width, height) of review.png with `panels` picked frames."""
    width, height = thumb_size(info)
    rows = max(1, math.ceil(panels / COLUMNS))
    sheet_width = COLUMNS * width + (COLUMNS + 1) * GAP
    return sheet_width, TITLE_HEIGHT + rows * (height + LABEL_HEIGHT + GAP) + PLOT_HEIGHT + 2 * GAP


class _Best:
    """The `size` entries with the largest keys seen so far (ties: the earlier frame stays)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._heap: list[tuple[float, int]] = []  # (key, -index): the smallest key is evicted first

    def offer(self, key: float, index: int) -> tuple[bool, int | None]:
        """(kept, evicted frame index) for frame `index` with `key`."""
        entry = (key, -index)
        if len(self._heap) < self._size:
            heapq.heappush(self._heap, entry)
            return True, None
        if entry <= self._heap[0]:
            return False, None
        evicted = heapq.heapreplace(self._heap, entry)
        return True, -evicted[1]

    def indices(self) -> set[int]:
        return {-i for _, i in self._heap}


class ReviewSink(Sink):
    """Writes review.png (RGB PNG, size `sheet_size(info, len(picked))`); `picked` lists (frame, reasons).

    Frames are judged when their redaction cover is known (sinks/cover.py, `redact_hold + redact_spread`
    frames late); until then a small copy of each waits in a short queue.
    """

    def __init__(
        self, path: Path, info: VideoInfo, options: SinkOptions, objects: Sequence[TrackedObject] = ONE_OBJECT
    ) -> None:
        super().__init__(path, info, objects)
        self._options = options
        self._output = PartialOutput(path)
        self._cover = Covers(options, info.width, info.height, range(len(self.objects)))
        self._kinds = {"low score": _Best(PICKS), "mask change": _Best(PICKS), "held over": _Best(PICKS)}
        self._waiting: deque[tuple[np.ndarray, np.ndarray]] = deque()  # (small image, small mask) a frame
        self._thumbs: dict[int, np.ndarray] = {}
        self._scores = np.zeros(info.num_frames, np.float32)
        self._areas = np.zeros(info.num_frames, np.int64)
        self._changes = np.zeros(info.num_frames, np.float32)
        self._held = np.zeros(info.num_frames, bool)
        self._previous: np.ndarray | None = None
        self._run: tuple[int, np.ndarray] | None = None  # the current held-over run: first frame, its thumb
        self.picked: list[tuple[int, list[str]]] = []

    def _write(self, frame: Frame, masks: np.ndarray, scores: tuple[float, ...]) -> None:
        # Several objects: judged together (every object's pixels, the least sure object's score).
        index, mask, score = frame.index, union(masks), min(scores)
        self._scores[index], self._areas[index] = score, np.count_nonzero(mask)
        self._changes[index] = 0.0 if self._previous is None else 1.0 - iou(mask, self._previous)
        self._previous = mask
        size = thumb_size(self.info)
        self._waiting.append(
            (cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA), _shrink(mask, size))
        )
        for cover in self._cover.push(index, masks, scores):
            self._judge(cover)

    def _judge(self, cover: CoverFrame) -> None:
        """Offer frame `cover.index` to the heaps now that its cover is known."""
        index = cover.index
        image, mask = self._waiting.popleft()
        self._held[index] = cover.held
        thumb: list[np.ndarray] = []  # made at most once, and only for a frame that is kept

        def make() -> np.ndarray:
            if not thumb:
                thumb.append(self._thumb(image, mask, cover))
            return thumb[0]

        # A held-over run shows its first frame; its low scores would only repeat it.
        offers = [("mask change", float(self._changes[index]))]
        if not cover.held:
            offers.append(("low score", -float(self._scores[index])))
        for kind, key in offers:
            kept, evicted = self._kinds[kind].offer(key, index)
            if kept:
                self._thumbs[index] = make()
            self._forget(evicted)
        if cover.held and self._run is None:
            self._run = (index, make())
        elif not cover.held:
            self._end_run(index)

    def _end_run(self, index: int) -> None:
        """A held-over run ended before frame `index`: offer its first frame, keyed by the run's length."""
        if self._run is None:
            return
        first, thumb = self._run
        self._run = None
        kept, evicted = self._kinds["held over"].offer(index - first, first)
        if kept:
            self._thumbs[first] = thumb
        self._forget(evicted)

    def _forget(self, index: int | None) -> None:
        if index is not None and not any(index in best.indices() for best in self._kinds.values()):
            self._thumbs.pop(index, None)

    def _thumb(self, image: np.ndarray, mask: np.ndarray, cover: CoverFrame) -> np.ndarray:
        """(h, w, 3) uint8 panel: the small frame with what redaction covers outlined in yellow and the
        mask in the overlay colour."""
        out = image.copy()
        size = (out.shape[1], out.shape[0])
        region = _shrink(cover.full(self.info.height, self.info.width), size) if cover.region else None
        for outline, color, width in ((region, HELD_COLOR, 1), (mask, self._options.overlay_color, 2)):
            if outline is None or not outline.any():
                continue
            contours, _ = cv2.findContours(outline.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, color, width, cv2.LINE_AA)
        return out

    def _finish(self) -> None:
        for cover in self._cover.flush():
            self._judge(cover)
        self._end_run(self.info.num_frames)
        reasons: dict[int, list[str]] = {}
        typical = float(np.median(self._scores))
        for kind, best in self._kinds.items():
            for index in best.indices():
                if kind == "low score" and self._scores[index] >= typical:
                    continue  # no lower than most frames: nothing to check
                reasons.setdefault(index, []).append(kind)
        self.picked = sorted(reasons.items())
        sheet = self._sheet()
        ok, data = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        if not ok:
            raise VggtsError(f"could not encode {self.path}")
        self._output.path.write_bytes(data.tobytes())  # not imwrite: a refused write raises with its errno

    def _commit(self) -> None:
        self._output.commit()

    def _sheet(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB contact sheet of the picked frames, titled, with the plot below."""
        width, height = sheet_size(self.info, len(self.picked))
        sheet = np.empty((height, width, 3), np.uint8)
        sheet[:] = BACKGROUND
        held = int(self._held.sum())
        title = (
            f"{self.info.path.name}: {self.info.num_frames} frames, mean score {self._scores.mean():.2f}, "
            f"{held} held over, {len(self.picked)} to check"
        )
        _text(sheet, title, (GAP, 20), 0.55)
        tw, th = thumb_size(self.info)
        for n, (index, why) in enumerate(self.picked):
            x = GAP + (n % COLUMNS) * (tw + GAP)
            y = TITLE_HEIGHT + (n // COLUMNS) * (th + LABEL_HEIGHT + GAP)
            sheet[y : y + th, x : x + tw] = self._thumbs[index]
            label = f"#{index}  {self._scores[index]:.2f}  {', '.join(why)}"
            _text(sheet, label, (x + 2, y + th + 16), 0.42)
        plot_top = height - PLOT_HEIGHT - GAP
        sheet[plot_top : plot_top + PLOT_HEIGHT, GAP : width - GAP] = self._plot(width - 2 * GAP)
        return sheet

    def _plot(self, width: int) -> np.ndarray:
        """(PLOT_HEIGHT, width, 3) uint8: score and relative mask area over the frames, held bands, picks."""
        plot = np.zeros((PLOT_HEIGHT, width, 3), np.uint8)
        plot[:] = (40, 40, 40)
        top, bottom = 18, PLOT_HEIGHT - 6
        frames = self.info.num_frames
        xs = np.round(np.linspace(0, width - 1, frames) if frames > 1 else np.zeros(1)).astype(np.int32)
        for index in np.flatnonzero(self._held):
            plot[top:bottom, max(0, xs[index] - 1) : xs[index] + 2] = HELD_COLOR
        for index, _ in self.picked:
            plot[bottom - 8 : bottom, xs[index]] = (255, 255, 255)
        area = self._areas / max(1, int(self._areas.max()))
        for values, color in ((area, AREA_COLOR), (self._scores, SCORE_COLOR)):
            ys = np.round(bottom - np.clip(values, 0, 1) * (bottom - top)).astype(np.int32)
            cv2.polylines(plot, [np.stack([xs, ys], axis=1)], False, color, 1, cv2.LINE_AA)
        legend = f"score (green), mask area / {int(self._areas.max())} px (magenta), held over (yellow)"
        _text(plot, f"frames 0-{frames - 1}: {legend}", (4, 13), 0.4)
        return plot

    def abort(self) -> None:
        self._output.discard()


def _shrink(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool mask resized to `size` (width, height): set where at least a quarter was set."""
    return cv2.resize(mask.astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA) >= 64


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    """White text at `origin` (baseline left) on the sheet's dark background, in place."""
    cv2.putText(image, text, origin, FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
