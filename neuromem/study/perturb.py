"""Perturbations of binned event inputs for robustness and pattern-completion evaluations.

Small composable callables in the style of tonic's transforms: each takes a count array
(N, T, *sensor) of events per bin and a numpy Generator, and returns a new array of the same
shape and dtype; `Compose` chains them. A level of 0 returns the input unchanged.
`perturb_rows` applies one to a batch of a split's samples, each with its own seeded generator
(an evaluation perturbs a split batch by batch).

Robustness: `EventNoise` (extra events, uniform over time and sensor, as a fraction of the
sample's own event count), `EventDropout` (each event removed with probability p),
`TimeJitter` (each event moved by a Gaussian number of bins, std in bins).
Completion (a partial cue): `EventDropout` again (a fraction of events dropped), `MaskRegion`
(a centred square of the sensor covering the fraction of its area, or a centred band of
channels for a 1-d sensor) and `CutWindow` (the last fraction of the time bins removed: the
network is cued with the beginning of the sample).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

Perturbation = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _as_counts(total: np.ndarray, dtype) -> np.ndarray:
    limit = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else None
    return (np.minimum(total, limit) if limit is not None else total).astype(dtype)


@dataclass(frozen=True)
class EventNoise:
    level: float  # expected extra events per sample, as a fraction of that sample's event count

    def __call__(self, inputs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.level <= 0:
            return inputs.copy()
        n, cells = inputs.shape[0], int(np.prod(inputs.shape[1:]))
        events = inputs.reshape(n, -1).sum(axis=1, dtype=np.int64)
        extra = rng.poisson(self.level * events)
        out = inputs.reshape(n, -1).astype(np.int64)
        rows = np.repeat(np.arange(n), extra)
        np.add.at(out, (rows, rng.integers(0, cells, rows.size)), 1)
        return _as_counts(out, inputs.dtype).reshape(inputs.shape)


@dataclass(frozen=True)
class EventDropout:
    level: float  # probability that an event is removed

    def __call__(self, inputs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.level <= 0:
            return inputs.copy()
        return rng.binomial(inputs.astype(np.int64), 1.0 - min(self.level, 1.0)).astype(inputs.dtype)


@dataclass(frozen=True)
class TimeJitter:
    level: float  # standard deviation of each event's shift, in time bins (clipped to the sample)

    def __call__(self, inputs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.level <= 0:
            return inputs.copy()
        n, steps = inputs.shape[:2]
        flat = inputs.reshape(n, steps, -1)
        sample, step, cell = np.nonzero(flat)
        counts = flat[sample, step, cell].astype(np.int64)
        sample, step, cell = (np.repeat(a, counts) for a in (sample, step, cell))
        moved = np.clip(step + np.rint(rng.normal(0.0, self.level, step.size)).astype(np.int64), 0, steps - 1)
        out = np.zeros(flat.shape, dtype=np.int64)
        np.add.at(out, (sample, moved, cell), 1)
        return _as_counts(out, inputs.dtype).reshape(inputs.shape)


def _sensor_axes(shape: Sequence[int]) -> tuple[int, ...]:
    """The spatial axes of a sensor (after N, T): the two largest of an image-like sensor
    (e.g. (2, 34, 34) -> H, W), the only one of a channel sensor (e.g. (700,))."""
    sensor = list(range(2, len(shape)))
    if len(sensor) <= 1:
        return tuple(sensor)
    return tuple(sorted(sorted(sensor, key=lambda a: shape[a])[-2:]))


@dataclass(frozen=True)
class MaskRegion:
    level: float  # fraction of the sensor masked (area of a centred square, or width of a centred band)

    def __call__(self, inputs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = inputs.copy()
        if self.level <= 0:
            return out
        axes = _sensor_axes(inputs.shape)
        side = min(self.level, 1.0) ** (1.0 / len(axes))  # per-axis extent, so the masked area is `level`
        index = [slice(None)] * inputs.ndim
        for axis in axes:
            size = inputs.shape[axis]
            width = int(round(side * size))
            start = (size - width) // 2
            index[axis] = slice(start, start + width)
        out[tuple(index)] = 0
        return out


@dataclass(frozen=True)
class CutWindow:
    level: float  # fraction of the time bins removed, from the end

    def __call__(self, inputs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = inputs.copy()
        cut = int(math.floor(min(self.level, 1.0) * inputs.shape[1] + 1e-9))
        if cut > 0:
            out[:, inputs.shape[1] - cut:] = 0
        return out


@dataclass(frozen=True)
class Compose:
    transforms: tuple[Perturbation, ...]

    def __call__(self, inputs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for transform in self.transforms:
            inputs = transform(inputs, rng)
        return inputs


def sample_generator(seed: int, position: int) -> np.random.Generator:
    """The generator of one sample's perturbation: seeded by (seed, the sample's position in its split)."""
    return np.random.default_rng((seed, position))


def perturb_rows(perturbation: Perturbation, inputs, positions: np.ndarray, seed: int) -> np.ndarray:
    """(len(positions), T, *sensor) counts of the samples at `positions` of `inputs` (dense, or the cache's sparse
    counts: only these rows are made dense), each perturbed alone with `sample_generator(seed, position)`. A
    sample's perturbation depends on the seed and its position only, not on the batch it is read in: a split is
    perturbed batch by batch, never dense as a whole, and every pass over it sees the same perturbed samples."""
    from neuromem.data.sparse_counts import SparseCounts

    positions = np.asarray(positions, dtype=np.int64).reshape(-1)
    block = inputs.dense(positions) if isinstance(inputs, SparseCounts) else np.array(inputs[positions])
    for k, position in enumerate(positions.tolist()):
        block[k] = perturbation(block[k:k + 1], sample_generator(seed, position))[0]
    return block


@dataclass(frozen=True)
class Evaluation:
    name: str
    kind: str  # "robustness" | "completion"
    make: Callable[[float], Perturbation]
    levels: tuple[float, ...]
    level_name: str


EVALUATIONS: dict[str, Evaluation] = {
    e.name: e for e in (
        Evaluation("noise", "robustness", EventNoise, (0.0, 0.25, 0.5, 1.0, 2.0), "extra events (fraction of the sample's)"),
        Evaluation("dropout", "robustness", EventDropout, (0.0, 0.25, 0.5, 0.75, 0.9), "fraction of events removed"),
        Evaluation("jitter", "robustness", TimeJitter, (0.0, 1.0, 2.0, 4.0, 8.0), "time jitter std (bins)"),
        Evaluation("drop", "completion", EventDropout, (0.0, 0.25, 0.5, 0.75), "fraction of events dropped"),
        Evaluation("mask", "completion", MaskRegion, (0.0, 0.25, 0.5, 0.75), "fraction of the sensor masked"),
        Evaluation("window", "completion", CutWindow, (0.0, 0.25, 0.5, 0.75), "fraction of time bins cut"),
    )
}
ROBUSTNESS = tuple(n for n, e in EVALUATIONS.items() if e.kind == "robustness")
COMPLETION = tuple(n for n, e in EVALUATIONS.items() if e.kind == "completion")
