"""Batches gathered straight into time-major storage equal the plain batch-major gather."""

import numpy as np
import torch

from neuromem.data.batching import time_major_batch


def test_time_major_batch_equals_batch_major_gather():
    counts = np.random.default_rng(0).integers(0, 4, (40, 9, 2, 6, 6)).astype(np.uint8)
    rows = np.array([17, 3, 39, 3, 0, 25])  # unsorted, with a repeat
    batch = time_major_batch(counts, rows)
    assert batch.dtype == torch.float32 and batch.shape == (6, 9, 2, 6, 6)
    assert torch.equal(batch, torch.from_numpy(counts[rows].astype(np.float32)))
    assert batch.transpose(0, 1).is_contiguous()  # what the time-major network reads


def test_time_major_batch_reads_a_memory_map(tmp_path):
    counts = np.random.default_rng(1).integers(0, 2, (12, 5, 700)).astype(np.uint8)
    np.save(tmp_path / "counts.npy", counts)
    mapped = np.load(tmp_path / "counts.npy", mmap_mode="r")
    rows = np.array([11, 2, 7])
    assert torch.equal(time_major_batch(mapped, rows), torch.from_numpy(counts[rows].astype(np.float32)))
