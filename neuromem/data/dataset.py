"""Binned data sets: event files -> (N, T, *input_shape) count tensors, cached and memory-mapped."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from neuromem.data.batching import time_major_batch
from neuromem.data.binning import FixedWindowFrames
from neuromem.data.cache import build_entry, cache_key, file_identity, load_entry
from neuromem.data.paths import default_cache_dir, fix_hint, source_of
from neuromem.data.sparse_counts import sample_to_sparse
from neuromem.data.registry import get_dataset
from neuromem.errors import NeuromemError


class BinnedDataset:
    """A thin view over cached count frames.

    inputs: (N, T, *input_shape) uint8 event counts, stored sparsely (`SparseCounts`, memory-mapped; `np.asarray`
    makes them dense); labels: (N,) int64.
    `ds[i]` gives (float32 tensor (T, *input_shape), int); `batches` gives batch-major
    float32 tensors (B, T, *input_shape) — time-major models transpose(0, 1).
    """

    def __init__(self, inputs: np.ndarray, labels: np.ndarray, *, num_classes: int, time_bins: int,
                 source: str, dataset: str, index: np.ndarray | None = None, meta: dict | None = None):
        self._inputs = inputs
        self._labels = np.asarray(labels, dtype=np.int64)
        self._index = None if index is None else np.asarray(index, dtype=np.int64)
        self.num_classes = num_classes
        self.time_bins = time_bins
        self.source = source
        self.dataset = dataset  # the registered data set's name
        self.meta = dict(meta or {})

    @property
    def modality(self) -> str:  # the old name of `dataset`
        return self.dataset

    # -- arrays ---------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self._inputs.shape[2:])

    @property
    def inputs(self) -> np.ndarray:
        return self._inputs if self._index is None else self._inputs[self._index]

    @property
    def labels(self) -> np.ndarray:
        return self._labels if self._index is None else self._labels[self._index]

    def _rows(self, positions: np.ndarray) -> np.ndarray:
        rows = positions if self._index is None else self._index[positions]
        return rows

    def __len__(self) -> int:
        return len(self._labels) if self._index is None else len(self._index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        row = int(self._rows(np.asarray([i % len(self)]))[0])
        return torch.from_numpy(np.asarray(self._inputs[row], dtype=np.float32)), int(self._labels[row])

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False, time_major: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x float32 (B, T, *input_shape), y int64 (B,)); order fixed by `generator` when shuffling.
        With `time_major`, x is stored (T, B, ...) (x.transpose(0, 1) is contiguous): built in one pass."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        n = len(self)
        order = torch.randperm(n, generator=generator).numpy() if shuffle else np.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            rows = self._rows(order[start:start + batch_size])
            if time_major:
                yield time_major_batch(self._inputs, rows), torch.from_numpy(self._labels[rows])
                continue
            # reading rows in file order is kinder to the page cache; put them back in batch order after
            sorted_pos = np.argsort(rows, kind="stable")
            block = np.empty((len(rows), *self._inputs.shape[1:]), dtype=np.float32)
            block[sorted_pos] = np.asarray(self._inputs[rows[sorted_pos]])
            yield torch.from_numpy(block), torch.from_numpy(self._labels[rows])

    def subset(self, indices: Sequence[int] | np.ndarray) -> "BinnedDataset":
        positions = np.asarray(indices, dtype=np.int64)
        if positions.size and (positions.min() < -len(self) or positions.max() >= len(self)):
            raise IndexError(f"subset indices must lie in 0..{len(self) - 1}")
        rows = self._rows(positions % max(len(self), 1))
        return BinnedDataset(self._inputs, self._labels, num_classes=self.num_classes, time_bins=self.time_bins,
                             source=self.source, dataset=self.dataset, index=rows, meta=self.meta)

    def __repr__(self) -> str:
        return (f"BinnedDataset({self.dataset}, n={len(self)}, T={self.time_bins}, "
                f"input_shape={self.input_shape}, source={self.source})")


def _entry_fits(cached, spec, time_bins: int) -> bool:
    inputs, labels, _ = cached
    return (labels.ndim == 1 and labels.dtype.kind in "iu"
            and tuple(inputs.shape[1:]) == (time_bins, *spec.input_shape)
            and (len(labels) == 0 or (int(labels.min()) >= 0 and int(labels.max()) < spec.num_classes)))


def _check_binned_size(spec, split: str, samples: int, time_bins: int) -> None:
    """The split as dense frames (one byte per bin), before anything is read: batches, perturbations and `hw` runs
    make parts of it dense, so it stays within the cache cap, or twice the split's dense size at the data set's own
    time bins, whichever is larger (real N-MNIST alone is beyond the default cap)."""
    from neuromem.bounds import human
    from neuromem.data.cache import MAX_BYTES_ENV, max_cache_bytes

    per_bin = samples * int(np.prod(spec.input_shape))
    size, usual = per_bin * time_bins, per_bin * spec.time_bins
    limit = max(max_cache_bytes(), 2 * usual)
    if size > limit:
        raise NeuromemError(f"binning {spec.name} {split} into {time_bins} time bins would make {human(size)} of "
                            f"dense frames ({samples} samples x {time_bins} x {int(np.prod(spec.input_shape))} bytes); "
                            f"the bound is {human(limit)} (the cache cap ${MAX_BYTES_ENV}, or twice the split at its "
                            f"default {spec.time_bins} bins); use fewer time bins or raise the cap")


def _entry_limit(spec, split: str, samples: int, cache_dir: Path):
    """limit(bytes, done) for `build_entry`: the sparse entry, extrapolated from the samples binned so far, must fit
    in the free space of the cache's disk (one line with the size it needs, before the disk fills)."""
    from neuromem.bounds import human

    def limit(nbytes: int, done: int) -> None:
        needed = int(nbytes / max(done, 1) * samples)
        try:
            free = shutil.disk_usage(cache_dir).free
        except OSError:
            return
        if needed - nbytes > free:
            raise NeuromemError(f"the {spec.name} {split} split needs about {human(needed)} in the binned cache, but "
                                f"only {human(free)} are free in {cache_dir}; free space or set NEUROMEM_HOME elsewhere")

    return limit


def _warn_over_cap(spec, split: str, entry: Path, meta: dict) -> None:
    """An entry larger than the cache cap is used, but the next entry evicts it and the next run bins it again: say so."""
    from neuromem.bounds import human
    from neuromem.data.cache import MAX_BYTES_ENV, max_cache_bytes

    stored, cap = int(meta.get("stored_bytes", 0)), max_cache_bytes()
    if stored > cap:
        print(f"warning: the binned {spec.name} {split} split takes {human(stored)} ({entry}), over the cache cap of "
              f"{human(cap)}: it is evicted by the next entry and binned again next run; raise ${MAX_BYTES_ENV} "
              f"above {human(stored)} to keep it", file=sys.stderr)


def load_split(dataset: str, root: str | os.PathLike, split: str, time_bins: int | None = None,
               cache_dir: str | os.PathLike | None = None, window_us: int | None = None) -> BinnedDataset:
    """Bin one split of a registered data set under a tonic `save_to` root (cached sparsely) and return it.

    time_bins / window_us default to the data set's spec; events at or after
    window_us are dropped. Counts above 255 in one bin are clipped (uint8 counts).
    """
    data_set = get_dataset(dataset)
    spec = data_set.spec
    spec.check_split(split)
    time_bins = spec.time_bins if time_bins is None else int(time_bins)
    window_us = spec.window_us if window_us is None else int(window_us)
    if time_bins < 1 or window_us < 1:
        raise NeuromemError(f"time_bins ({time_bins}) and window_us ({window_us}) must be positive integers")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise NeuromemError(f"data root {root} does not exist; {fix_hint(root)}")
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    source = source_of(root)
    identity_files = data_set.files(root, split)  # raises the missing-file error
    # "modality" is the key's old name for the data set; kept so existing cache entries stay valid
    params = {"modality": spec.name, "split": split, "time_bins": time_bins, "window_us": window_us,
              "sensor_size": list(spec.sensor_size)}
    key = cache_key(file_identity(identity_files), params)
    entry = cache_dir / f"{spec.name}-{split}-{key}"

    cached = load_entry(entry)
    if cached is not None and not _entry_fits(cached, spec, time_bins):
        cached = None  # labels or shape that do not fit the data set: rebuilt from the files, never trusted
    if cached is None:
        if entry.exists():
            shutil.rmtree(entry, ignore_errors=True)
        source_split = data_set.read(root, split)
        labels, read_events = source_split.labels, source_split.events
        _check_binned_size(spec, split, len(labels), time_bins)
        to_frames = FixedWindowFrames(spec.sensor_size, time_bins, window_us)

        def fill(writer) -> dict:
            clipped = 0
            for i in range(len(labels)):
                index, counts, clipped_here = sample_to_sparse(to_frames(read_events(i)))
                writer.append(index, counts)
                clipped += clipped_here
            return {"clipped_bins": clipped}

        meta = {**params, "root": str(root.resolve()), "source": source, "num_samples": int(len(labels)),
                "sample_shape": [time_bins, *spec.input_shape]}
        try:
            build_entry(entry, len(labels), labels, fill, meta, _entry_limit(spec, split, len(labels), cache_dir))
        except OSError as error:
            raise NeuromemError(f"cannot write the binned cache in {cache_dir} ({error.strerror or error}); "
                                "pass another cache_dir or set NEUROMEM_HOME to a writable folder") from None
        cached = load_entry(entry)
        if cached is None:
            raise NeuromemError(f"could not write the binned cache under {cache_dir}; check that it is writable")
        cached[2]["cache_hit"] = False
        _warn_over_cap(spec, split, entry, cached[2])
    else:
        cached[2]["cache_hit"] = True
    inputs, labels, meta = cached
    meta["cache_entry"] = str(entry)
    return BinnedDataset(inputs, labels, num_classes=spec.num_classes, time_bins=time_bins, source=source,
                         dataset=spec.name, meta=meta)
