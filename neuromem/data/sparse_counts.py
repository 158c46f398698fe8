"""Binned event counts stored sparsely: per sample, the non-zero bins as (flat index, count) pairs.

A dense uint8 cache spends one byte per bin whether an event fell there or not:
~66 KB per N-MNIST sample at ~5 % density, ~4 GB for its 60,000 training
samples, beyond the default cache cap. Stored as compressed-sparse rows (one
offset per sample; per non-zero bin a uint16 step from the previous non-zero
bin's flat index t * features + f, and a uint8 count) the same sample costs 3
bytes per non-zero bin, a few KB. A gap wider than a step can say is bridged by
steps of count 0, which write nothing (rare: 65,535 bins is 94 SHD time bins). Batches
are scattered straight from the sparse rows into the time-major float buffer the
network runs in, so a worker touches the bytes of the samples it draws, not the
whole data set.

`SparseCounts` behaves like the (N, T, *shape) uint8 array it stands for where
the code needs it to: `len`, `shape`, `dtype`, row selection (`x[rows]`, a view),
one sample (`x[i]`, dense), and `np.asarray(x)` (dense: for small sets only).
"""

from __future__ import annotations

import mmap
from typing import Sequence

import numpy as np

try:
    import numba as _numba
except ImportError:  # pragma: no cover - numba comes with tonic
    _numba = None

INDEX_DTYPE = np.uint16  # a step between consecutive non-zero bins of one sample
COUNT_DTYPE = np.uint8
MAX_STEP = int(np.iinfo(INDEX_DTYPE).max)
RELEASE_EVERY_BYTES = 64 << 20  # mapped cache pages read since the last release: then handed back
BYTES_PER_BIN = np.dtype(INDEX_DTYPE).itemsize + np.dtype(COUNT_DTYPE).itemsize
DAMAGED_ROW = ("a cached row of counts runs past its sample's bins (a damaged cache entry): "
               "`neuromem data cache --clear` and run again")


class SparseCounts:
    """(N, T, *shape) uint8 counts held as CSR rows: `offsets` (M+1,), `index` (nnz,) steps (a row's flat bin
    positions are their running sum), `counts` (nnz,). `rows` maps this view's samples to CSR rows (None: all M rows
    in order)."""

    dtype = np.dtype(np.uint8)

    def __init__(self, offsets: np.ndarray, index: np.ndarray, counts: np.ndarray, sample_shape: Sequence[int],
                 rows: np.ndarray | None = None):
        self.offsets, self.index, self.counts = offsets, index, counts
        self.sample_shape = tuple(int(n) for n in sample_shape)  # (T, *shape)
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self._read_since_release = 0

    # -- array-like ---------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.sample_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.sample_shape)

    @property
    def bins_per_sample(self) -> int:
        return int(np.prod(self.sample_shape))

    def __len__(self) -> int:
        return len(self.offsets) - 1 if self.rows is None else len(self.rows)

    def csr_rows(self, positions: np.ndarray | None = None) -> np.ndarray:
        """CSR row numbers of this view's samples at `positions` (all of them by default)."""
        if positions is None:
            return np.arange(len(self), dtype=np.int64) if self.rows is None else self.rows
        positions = np.asarray(positions, dtype=np.int64)
        return positions if self.rows is None else self.rows[positions]

    def _bounds(self, positions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        rows = self.csr_rows(positions)
        return np.asarray(self.offsets[rows]), np.asarray(self.offsets[rows + 1])

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            if not -len(self) <= key < len(self):
                raise IndexError(f"index {key} out of range for {len(self)} samples")
            return self.dense(np.asarray([int(key) % len(self)]))[0]
        if isinstance(key, slice):
            positions = np.arange(len(self))[key]
        else:
            positions = np.asarray(key)
            if positions.dtype == bool:
                if positions.shape != (len(self),):
                    raise IndexError(f"boolean index of shape {positions.shape} for {len(self)} samples")
                positions = np.flatnonzero(positions)
            elif positions.size and positions.dtype.kind not in "iu":
                raise IndexError(f"sample indices must be integers, got {positions.dtype}")
            positions = positions.astype(np.int64).reshape(-1)
            if positions.size and (positions.min() < -len(self) or positions.max() >= len(self)):
                raise IndexError(f"sample indices must lie in 0..{len(self) - 1}")
            positions = positions % max(len(self), 1)
        return SparseCounts(self.offsets, self.index, self.counts, self.sample_shape, self.csr_rows(positions))

    def dense(self, positions: np.ndarray | None = None) -> np.ndarray:
        """(len(positions), T, *shape) uint8 counts of the samples at `positions` (all by default)."""
        rows = self.csr_rows(positions)
        self._release_pages(rows)
        out = np.zeros((len(rows), self.bins_per_sample), dtype=np.uint8)
        for i, row in enumerate(rows):
            start, stop = int(self.offsets[row]), int(self.offsets[row + 1])
            out[i, np.cumsum(self.index[start:stop], dtype=np.int64)] = self.counts[start:stop]
        return out.reshape(len(rows), *self.sample_shape)

    def __array__(self, dtype=None, copy=None):
        out = self.dense()
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        starts, stops = self._bounds()
        return f"SparseCounts(shape={self.shape}, nonzero bins={int((stops - starts).sum())})"

    # -- batches ----------------------------------------------------------------------
    def scatter_time_major(self, positions: np.ndarray, out: np.ndarray) -> None:
        """Write float counts of the samples at `positions` into `out` (T, B, features), zeroing it first."""
        rows = self.csr_rows(positions)
        steps = self.sample_shape[0]
        features = int(np.prod(self.sample_shape[1:]))
        out = out.reshape(steps, len(rows), features)
        self._release_pages(rows)
        if _numba is not None:
            if not _scatter(np.asarray(self.offsets), self.index, self.counts, rows, features, out):
                raise ValueError(DAMAGED_ROW)
            return
        out.fill(0)
        for position, row in enumerate(rows):
            start, stop = int(self.offsets[row]), int(self.offsets[row + 1])
            flat = np.cumsum(self.index[start:stop], dtype=np.int64)
            out[flat // features, position, flat % features] = self.counts[start:stop]


    def segments(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The CSR rows of the samples at `positions` as they are stored: (entries per sample (B,) int64, their
        steps (nnz,) uint16 and counts (nnz,) uint8, one sample after the other) — what a batch assembled on
        another device moves there (3 bytes a non-zero bin, not 4 a bin)."""
        rows = self.csr_rows(positions)
        self._release_pages(rows)
        starts, stops = np.asarray(self.offsets[rows]), np.asarray(self.offsets[rows + 1])
        spans = [slice(a, b) for a, b in zip(starts.tolist(), stops.tolist())]
        steps = _join([np.asarray(self.index[span]) for span in spans], INDEX_DTYPE)
        counts = _join([np.asarray(self.counts[span]) for span in spans], COUNT_DTYPE)
        return (stops - starts).astype(np.int64), steps, counts

    def _release_pages(self, rows: np.ndarray) -> None:
        """A memory-mapped cache's pages count in the process's resident memory once read, so an epoch over a large
        split would grow a worker by the split's size: every RELEASE_EVERY_BYTES read, the pages are handed back
        (the kernel keeps them in its page cache; the next read maps them again)."""
        self._read_since_release += int((self.offsets[rows + 1] - self.offsets[rows]).sum()) * BYTES_PER_BIN
        if self._read_since_release < RELEASE_EVERY_BYTES:
            return
        self._read_since_release = 0
        for array in (self.index, self.counts):
            mapping = getattr(array, "_mmap", None)
            if mapping is not None and hasattr(mapping, "madvise"):
                try:
                    mapping.madvise(mmap.MADV_DONTNEED)
                except (OSError, ValueError):
                    pass


def concatenate(parts: Sequence) -> "SparseCounts | np.ndarray":
    """Samples of several (N_i, T, *shape) count arrays, dense or sparse, one after the other (sparse if any is)."""
    if not any(isinstance(part, SparseCounts) for part in parts):
        return np.concatenate([np.asarray(part) for part in parts])
    sparse = [part if isinstance(part, SparseCounts) else from_dense(np.asarray(part)) for part in parts]
    shape = sparse[0].sample_shape
    if any(part.sample_shape != shape for part in sparse):
        raise ValueError(f"cannot join samples of shapes {sorted({part.sample_shape for part in sparse})}")
    offsets, index, counts, total = [np.zeros(1, dtype=np.int64)], [], [], 0
    for part in sparse:
        starts, stops = part._bounds()
        for start, stop in zip(starts.tolist(), stops.tolist()):
            index.append(np.asarray(part.index[start:stop]))
            counts.append(np.asarray(part.counts[start:stop]))
        lengths = stops - starts
        offsets.append(total + np.cumsum(lengths))
        total += int(lengths.sum())
    return SparseCounts(np.concatenate(offsets), _join(index, INDEX_DTYPE), _join(counts, COUNT_DTYPE), shape)


def _join(chunks: list, dtype) -> np.ndarray:
    return np.concatenate(chunks).astype(dtype, copy=False) if chunks else np.zeros(0, dtype)


def from_dense(counts: np.ndarray) -> SparseCounts:
    """The sparse form of (N, T, *shape) counts (clipped to 255)."""
    counts = np.asarray(counts)
    rows = [sample_to_sparse(sample)[:2] for sample in counts]
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum([len(steps) for steps, _ in rows], out=offsets[1:])
    return SparseCounts(offsets, _join([r[0] for r in rows], INDEX_DTYPE), _join([r[1] for r in rows], COUNT_DTYPE),
                        counts.shape[1:])


def sample_to_sparse(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(steps, counts clipped to 255, bins clipped) of one sample's (T, *shape) frames."""
    flat = frames.reshape(-1)
    index = np.flatnonzero(flat)
    values = flat[index]
    clipped = int((values > 255).sum())
    steps = np.diff(index, prepend=0)
    values = np.minimum(values, 255).astype(COUNT_DTYPE)
    if len(steps) and steps.max() > MAX_STEP:  # bridge wide gaps with steps that write a count of 0
        fillers = np.maximum(steps - 1, 0) // MAX_STEP  # whole MAX_STEP steps before each entry's own step
        keep_steps, keep_values = [], []
        for step, value, extra in zip(steps.tolist(), values.tolist(), fillers.tolist()):
            keep_steps += [MAX_STEP] * extra + [step - extra * MAX_STEP]
            keep_values += [0] * extra + [value]
        steps, values = np.asarray(keep_steps), np.asarray(keep_values, dtype=COUNT_DTYPE)
    return steps.astype(INDEX_DTYPE), values, clipped


if _numba is not None:

    @_numba.njit(cache=True, nogil=True)
    def _scatter(offsets, index, counts, rows, features, out):
        # False (nothing past the buffer written) where a row runs past its sample: the caller says so
        out[:] = 0.0
        bins = out.shape[0] * features
        for position in range(len(rows)):
            row = rows[position]
            flat = 0
            for k in range(offsets[row], offsets[row + 1]):
                flat += index[k]
                if flat >= bins:
                    return False
                if counts[k]:
                    out[flat // features, position, flat % features] = counts[k]
        return True
