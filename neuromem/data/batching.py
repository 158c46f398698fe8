"""Batches straight from the cached uint8 counts into the time-major float layout the network runs in.

Spiking layers run time-major (T, batch, ...). Gathering (batch, T, ...) float
rows and transposing afterwards touches every element three times (convert,
transpose, copy); `time_major_batch` converts and transposes in one pass into
a buffer on huge pages, and hands back the usual batch-major view of it, so
`x.transpose(0, 1)` in the network is contiguous again and costs nothing.
Sparse counts (the cache's form) are scattered into that buffer directly: the
cost follows the events drawn, not the bins.
"""

from __future__ import annotations

import numpy as np
import torch

from neuromem.data.sparse_counts import SparseCounts
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


def time_major_batch(counts: "np.ndarray | SparseCounts", rows: np.ndarray) -> torch.Tensor:
    """float32 (B, T, *shape) view of (T, B, *shape) storage holding `counts[rows]` (dense or sparse counts)."""
    rows = np.asarray(rows, dtype=np.int64)
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
