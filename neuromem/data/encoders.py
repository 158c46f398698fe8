"""Spike encoders for dense inputs (images, spectrograms, sensor traces), as tonic-style callables.

Each takes a numpy array or torch tensor and returns a float32 torch tensor of
spikes with time first: (T, *x.shape), or (T, 2, *feature_shape) for the
two-polarity DeltaEncoder. Random encoders own a seeded torch.Generator:
same seed -> same sequence of outputs.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    return torch.as_tensor(x).to(torch.float32)


class RateEncoder:
    """Bernoulli rate code: each step a unit spikes with probability clip(gain * x, 0, 1).

    x is expected in [0, 1] (e.g. pixel intensities scaled); `gain` scales the firing probability.
    """

    def __init__(self, time_steps: int, gain: float = 1.0, seed: int | None = 0):
        if time_steps < 1:
            raise ValueError("time_steps must be >= 1")
        self.time_steps = time_steps
        self.gain = gain
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    def __call__(self, x) -> torch.Tensor:
        probability = (_as_tensor(x) * self.gain).clamp(0.0, 1.0)
        draws = torch.rand((self.time_steps, *probability.shape), generator=self.generator)
        return (draws < probability).to(torch.float32)

    def __repr__(self) -> str:
        return f"RateEncoder(time_steps={self.time_steps}, gain={self.gain})"


class LatencyEncoder:
    """Time-to-first-spike code: one spike per unit, earlier for larger inputs; none below `threshold`.

    x in [0, 1]; x = 1 spikes at step 0 and x = threshold at step T-1. mode="linear": the step grows
    linearly as x falls; mode="log": it grows with log(1 / x), the latency of a leaky integrator
    driven by x (Thorpe-style rank codes), which spreads weak inputs further apart. Deterministic.
    """

    def __init__(self, time_steps: int, threshold: float = 0.01, mode: str = "log"):
        if time_steps < 1:
            raise ValueError("time_steps must be >= 1")
        if not 0 < threshold < 1:
            raise ValueError("threshold must lie in (0, 1)")
        if mode not in ("linear", "log"):
            raise ValueError("mode must be 'linear' or 'log'")
        self.time_steps, self.threshold, self.mode = time_steps, threshold, mode

    def __call__(self, x) -> torch.Tensor:
        x = _as_tensor(x).clamp(0.0, 1.0)
        fires = x >= self.threshold
        safe = torch.where(fires, x, torch.ones_like(x))
        if self.mode == "linear":
            fraction = (1.0 - safe) / (1.0 - self.threshold)
        else:
            fraction = torch.log(safe) / math.log(self.threshold)
        step = torch.round(fraction.clamp(0.0, 1.0) * (self.time_steps - 1)).long()
        out = torch.zeros((self.time_steps, *x.shape), dtype=torch.float32)
        out.scatter_(0, step.unsqueeze(0), fires.to(torch.float32).unsqueeze(0))
        return out

    def __repr__(self) -> str:
        return f"LatencyEncoder(time_steps={self.time_steps}, threshold={self.threshold}, mode={self.mode!r})"


class DeltaEncoder:
    """Change (level-crossing) code for a sequence x of shape (T, ...), as a DVS pixel does it.

    A unit emits an ON spike each time its input rises `threshold` above its reference and an
    OFF spike each time it falls `threshold` below; the reference then moves by one threshold,
    so slow drifts accumulate into spikes instead of being lost. Output (T, 2, ...) counts with
    channel 0 = OFF, 1 = ON (tonic's polarity order); signed=True gives (T, ...) ON minus OFF.
    Step 0 has no previous value and emits nothing. Deterministic.
    """

    def __init__(self, threshold: float, signed: bool = False):
        if threshold <= 0:
            raise ValueError("threshold must be > 0")
        self.threshold, self.signed = threshold, signed

    def __call__(self, x) -> torch.Tensor:
        x = _as_tensor(x)
        if x.dim() < 1:
            raise ValueError("DeltaEncoder needs a sequence with time first, shape (T, ...)")
        reference = x[0].clone()
        change = torch.zeros_like(x)
        for t in range(1, x.shape[0]):  # sequential: each step's reference depends on the spikes before it
            difference = x[t] - reference
            crossings = torch.trunc(difference / self.threshold)  # +n ON, -n OFF
            change[t] = crossings
            reference = reference + crossings * self.threshold
        if self.signed:
            return change + 0.0  # no negative zeros
        return torch.stack([(-change).clamp_min(0), change.clamp_min(0)], dim=1)

    def __repr__(self) -> str:
        return f"DeltaEncoder(threshold={self.threshold}, signed={self.signed})"
