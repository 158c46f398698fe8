"""Sparse event input on the device (issue 29): a batch of the sparse cache assembled where the network runs (its
stored steps and counts moved, scattered into a zeroed time-major buffer there) equals the CPU's batch, bit for
bit; checked here with the same function on the CPU (and on CUDA where there is one)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from neuromem.data import batching
from neuromem.data.batching import scatter_on_device, time_major_batch
from neuromem.data.sparse_counts import MAX_STEP, SparseCounts, from_dense

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))]


def _frames(samples=12, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(0.3, (samples, 9, 2, 6, 6))
    counts[2 % samples] = 0  # a sample without events
    counts[5 % samples, 3, 1, 2, 2] = 255  # the largest count the store holds
    return np.minimum(counts, 255).astype(np.uint8)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("rows", [[4, 2, 0, 11, 11, 7], [2], [], list(range(12))], ids=["shuffled+repeat", "empty-sample", "no-rows", "all"])
def test_the_device_batch_equals_the_cpu_batch(device, rows):
    frames = _frames()
    sparse = from_dense(frames)
    rows = np.asarray(rows, dtype=np.int64)
    expected = time_major_batch(sparse, rows)
    got = scatter_on_device(sparse, rows, device)
    assert got.device.type == device and got.dtype == torch.float32 and got.shape == expected.shape
    assert torch.equal(got.cpu(), expected)
    assert torch.equal(got.cpu(), torch.from_numpy(frames[rows].astype(np.float32)))
    assert got.transpose(0, 1).is_contiguous()  # time-major storage, as the front ends read it


@pytest.mark.parametrize("device", DEVICES)
def test_gaps_wider_than_a_step_and_views_of_the_store(device):
    steps, features = 200, 700  # an SHD-sized sample: 140,000 bins, more than a uint16 step spans
    frames = np.zeros((4, steps, features), dtype=np.uint8)
    frames[0, 0, 0] = 1
    frames[0, -1, -1] = 3  # one gap of ~140,000 bins: bridged by count-0 fillers
    frames[1, 120, 5] = 2
    frames[3, :, ::97] = 1
    sparse = from_dense(frames)
    assert (np.asarray(sparse.index) == MAX_STEP).any()  # the fillers are there
    view = sparse[np.array([3, 0, 1])]  # a view (rows remapped), as the trainer's subsets are
    rows = np.array([1, 0, 2, 1])
    got = scatter_on_device(view, rows, device).cpu()
    assert torch.equal(got, time_major_batch(view, rows))
    assert torch.equal(got, torch.from_numpy(frames[[0, 3, 1, 0]].astype(np.float32)))


def test_a_damaged_row_is_refused_on_both_paths():
    sparse = from_dense(_frames(3))
    index = np.asarray(sparse.index).copy()
    index[-1] = MAX_STEP  # the last entry now lands past its sample's bins
    damaged = SparseCounts(sparse.offsets, index, sparse.counts, sparse.sample_shape)
    for assemble in (lambda: time_major_batch(damaged, np.arange(3)), lambda: scatter_on_device(damaged, np.arange(3), "cpu")):
        with pytest.raises(ValueError, match="damaged cache entry"):
            assemble()


def test_the_batch_path_assembles_sparse_counts_on_a_device_that_is_not_the_cpu(monkeypatch):
    calls = []
    monkeypatch.setattr(batching, "scatter_on_device", lambda counts, rows, device: calls.append(device) or "on device")
    sparse = from_dense(_frames(3))
    assert time_major_batch(sparse, np.arange(2), torch.device("cuda")) == "on device"  # not built on the CPU first
    assert calls == [torch.device("cuda")]
    for cpu in (None, "cpu", torch.device("cpu")):  # the CPU keeps its numba scatter
        assert torch.equal(time_major_batch(sparse, np.arange(2), cpu), torch.from_numpy(_frames(3)[:2].astype(np.float32)))
    assert len(calls) == 1


def test_the_trainer_asks_for_batches_on_the_networks_device(monkeypatch):
    from neuromem.train import trainer

    asked = []
    original = trainer.time_major_batch

    def spy(counts, rows, device=None):
        asked.append(device)
        return original(counts, rows, device)

    monkeypatch.setattr(trainer, "time_major_batch", spy)
    frames = _frames(5)
    labels = np.arange(5) % 2
    split = trainer.SplitData("shd", from_dense(frames), labels, labels, frames.shape[2:])

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(2))
            self.memory = SimpleNamespace(reset_memory=lambda: None)

        def forward(self, inputs):
            ((name, x),) = inputs.items()
            return SimpleNamespace(logits={name: x.flatten(1)[:, :2] + self.w},
                                   memory=SimpleNamespace(representations={name: x.mean(1).flatten(1)}))

    result = trainer._evaluate(Net(), split)
    assert asked and all(d == torch.device("cpu") for d in asked)
    assert np.array_equal(result["predictions"], frames.reshape(5, -1)[:, :2].argmax(-1))
    asked.clear()
    batches = list(trainer._batches({"shd": split}, 2, np.random.default_rng(0), device=torch.device("cpu")))
    assert len(batches) == 3 and asked == [torch.device("cpu")] * 3
