"""Batches straight from the cached uint8 counts into the time-major float layout the network runs in.

Spiking layers run time-major (T, batch, ...). Gathering (batch, T, ...) float
rows and transposing afterwards touches every element three times (convert,
transpose, copy); `time_major_batch` converts and transposes in one pass into
a buffer on huge pages, and hands back the usual batch-major view of it, so
`x.transpose(0, 1)` in the network is contiguous again and costs nothing.
Sparse counts (the cache's form) are scattered into that buffer directly: the
cost follows the events drawn, not the bins.

On another device (`device=` a CUDA device), a batch of sparse counts is assembled
there: the batch's stored rows (a uint16 step and a uint8 count per non-zero bin)
are moved, their flat bin positions recovered by a cumulative sum on the device,
and scattered into a zeroed time-major float buffer there (`scatter_on_device`):
3 bytes a non-zero bin cross the bus instead of 4 bytes a bin (N-MNIST, ~5 %
of its bins non-zero: ~25x fewer). Dense counts are built on the CPU and copied.
"""

from __future__ import annotations

import numpy as np
import torch

from neuromem.data.sparse_counts import DAMAGED_ROW, SparseCounts
from neuromem.neurons.functional import buffers

try:
    import numba as _numba
except ImportError:  # pragma: no cover - numba comes with tonic
    _numba = None

if _numba is not None:

    @_numba.njit(cache=True, nogil=True)
    def _gather_time_major(counts, rows, order, out):
        # counts (N, T, F) uint8; out (T, B, F) float32; rows visited in file order (`order`),
        # which is kinder to a memory-mapped cache
        steps, features = counts.shape[1], counts.shape[2]
        for position in order:
            row = rows[position]
            for t in range(steps):
                for f in range(features):
                    out[t, position, f] = counts[row, t, f]


def time_major_batch(counts: "np.ndarray | SparseCounts", rows: np.ndarray,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """float32 (B, T, *shape) view of (T, B, *shape) storage holding `counts[rows]` (dense or sparse counts), on
    `device` (default the CPU; sparse counts are scattered on the device itself, see `scatter_on_device`)."""
    rows = np.asarray(rows, dtype=np.int64)
    if device is not None and torch.device(device).type != "cpu":
        if isinstance(counts, SparseCounts):
            return scatter_on_device(counts, rows, device)
        return time_major_batch(counts, rows).to(device)  # strides kept: still time-major storage
    if isinstance(counts, SparseCounts):
        out = buffers.empty((counts.shape[1], len(rows), *counts.shape[2:]), torch.float32)
        counts.scatter_time_major(rows, out.numpy())
        return out.transpose(0, 1)
    samples, steps = counts.shape[:2]
    shape = counts.shape[2:]
    out = buffers.empty((steps, len(rows), *shape), torch.float32)
    flat_counts = np.asarray(counts).reshape(samples, steps, -1)
    order = np.argsort(rows, kind="stable")  # rows read in file order
    if _numba is not None and flat_counts.dtype == np.uint8:
        _gather_time_major(flat_counts, rows, order, out.numpy().reshape(steps, len(rows), -1))
    else:
        gathered = np.asarray(flat_counts[rows[order]], dtype=np.float32)
        out.numpy().reshape(steps, len(rows), -1)[:, order] = gathered.transpose(1, 0, 2)
    return out.transpose(0, 1)


def scatter_on_device(counts: SparseCounts, rows: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """float32 (B, T, *shape) view of (T, B, *shape) storage on `device` holding `counts[rows]`, assembled there from
    the stored rows: steps and counts moved, a sample's flat bin positions its steps' running sum (a cumulative sum
    over the batch less each sample's start), scattered into zeros. On the CPU it equals `time_major_batch`."""
    device = torch.device(device)
    rows = np.asarray(rows, dtype=np.int64)
    steps_per_sample, features = counts.shape[1], int(np.prod(counts.shape[2:]))
    out = torch.zeros((steps_per_sample, len(rows), features), dtype=torch.float32, device=device)
    lengths, steps, values = counts.segments(rows)
    if len(steps):
        entries = len(steps)
        lengths_d = torch.from_numpy(lengths).to(device)
        # uint16 steps travel as int16 (2 bytes each) and are read back as unsigned on the device
        flat = (torch.from_numpy(steps.view(np.int16)).to(device).to(torch.int64) & 0xFFFF).cumsum(0)
        first = torch.cumsum(lengths_d, 0) - lengths_d  # each sample's first entry in the batch's run
        before = torch.cat([flat.new_zeros(1), flat])[first]  # the running sum before each sample's first entry
        flat = flat - before.repeat_interleave(lengths_d, output_size=entries)
        position = torch.arange(len(rows), device=device).repeat_interleave(lengths_d, output_size=entries)
        if int(flat.max()) >= steps_per_sample * features:
            raise ValueError(DAMAGED_ROW)
        out[flat // features, position, flat % features] = torch.from_numpy(values).to(device).to(torch.float32)
    return out.view(steps_per_sample, len(rows), *counts.shape[2:]).transpose(0, 1)
