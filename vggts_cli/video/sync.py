"""Time alignment across cameras: a frame's world time is its presentation time plus its camera's offset."""

from __future__ import annotations

import numpy as np

from vggts_cli.video.reader import VideoInfo


def world_times(info: VideoInfo, offset: float) -> np.ndarray:
    """(num_frames,) float64 seconds on the shared clock: presentation time + the camera's `offset`."""
    return info.times + offset


def nearest_frames(ref_times: np.ndarray, times: np.ndarray) -> np.ndarray:
    """For each of `times` (N,), the index into sorted `ref_times` (M,) of the nearest; ties go earlier.

    Returns (N,) int64.
    """
    ref_times = np.asarray(ref_times, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if len(ref_times) == 0:
        raise ValueError("no reference times to match against")
    if len(ref_times) == 1:
        return np.zeros(len(times), dtype=np.int64)
    after = np.clip(np.searchsorted(ref_times, times, side="left"), 1, len(ref_times) - 1)
    before = after - 1
    take_before = times - ref_times[before] <= ref_times[after] - times
    return np.where(take_before, before, after).astype(np.int64)
