"""Events -> fixed-size count frames with tonic's ToFrame, as small tonic-style callables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tonic


@dataclass(frozen=True)
class CropTime:
    """Keep events with start_us <= t < end_us (tonic's CropTime keeps t <= max; we want a half-open window)."""

    start_us: float
    end_us: float

    def __call__(self, events: np.ndarray) -> np.ndarray:
        t = events["t"]
        return events[(t >= self.start_us) & (t < self.end_us)]


@dataclass(frozen=True)
class SortByTime:
    """tonic's slicers search sorted timestamps; files are not obliged to store them sorted."""

    def __call__(self, events: np.ndarray) -> np.ndarray:
        t = events["t"]
        if len(t) < 2 or np.all(t[1:] >= t[:-1]):
            return events
        return events[np.argsort(t, kind="stable")]


@dataclass(frozen=True)
class FixedWindowFrames:
    """`time_bins` frames of equal length over [0, window_us) — the same grid for every sample,
    so that a bin means the same time in every recording (tonic's ToFrame with start/end time).

    Returns counts (time_bins, *frame_shape) as int16, tonic's frame dtype:
    (T, 700) for SHD-like sensors (y = 1, one polarity), (T, P, H, W) otherwise.
    """

    sensor_size: tuple[int, int, int]
    time_bins: int
    window_us: float

    def __post_init__(self) -> None:
        if self.time_bins < 1:
            raise ValueError("time_bins must be >= 1")

    @property
    def frame_shape(self) -> tuple[int, ...]:
        x, y, p = self.sensor_size
        return (x,) if (y == 1 and p == 1) else (p, y, x)

    def __call__(self, events: np.ndarray) -> np.ndarray:
        events = SortByTime()(CropTime(0, self.window_us)(events))
        out = np.zeros((self.time_bins, *self.frame_shape), dtype=np.int16)
        if len(events) == 0:
            return out
        bin_us = self.window_us / self.time_bins
        # end_time a hair past the window so float rounding in tonic's slice count cannot drop the last bin
        to_frame = tonic.transforms.ToFrame(
            sensor_size=self.sensor_size, time_window=bin_us, start_time=0, end_time=self.window_us + 1e-3 * bin_us
        )
        frames = to_frame(events)[: self.time_bins]
        out[: len(frames)] = frames.reshape(len(frames), *self.frame_shape)
        return out
