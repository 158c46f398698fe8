"""Robustness / completion perturbations read the test split batch by batch from the sparse cache (issue 29):
the whole split is never made dense, each sample's perturbation is seeded by its position (the same whatever the
batch it is read in), and the curves are the same on every run."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from neuromem.data.sparse_counts import SparseCounts, from_dense
from neuromem.study.perturb import EVALUATIONS, perturb_rows
from neuromem.train.trainer import EVAL_BATCH, SplitData


def _counts(samples: int = 150, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.05, 0.6, (samples, 1, 1))  # samples of different event counts
    return rng.poisson(np.broadcast_to(rates, (samples, 10, 12)).copy()).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(EVALUATIONS))
def test_a_samples_perturbation_depends_on_its_position_not_its_batch(name):
    dense = _counts(20)
    sparse = from_dense(dense)
    perturb = EVALUATIONS[name].make(EVALUATIONS[name].levels[-1])
    whole = perturb_rows(perturb, sparse, np.arange(20), seed=7)
    parts = np.concatenate([perturb_rows(perturb, sparse, np.arange(a, min(a + 6, 20)), seed=7) for a in range(0, 20, 6)])
    assert np.array_equal(whole, parts)
    assert np.array_equal(whole, perturb_rows(perturb, dense, np.arange(20), seed=7))  # sparse or dense store alike
    assert np.array_equal(whole[[3, 11]], perturb_rows(perturb, sparse, np.array([3, 11]), seed=7))
    assert whole.dtype == np.uint8 and whole.shape == dense.shape
    assert not np.array_equal(whole, dense)  # the strongest level changes the samples
    if name in ("noise", "dropout", "jitter", "drop"):  # random ones: another seed, other draws
        assert not np.array_equal(whole, perturb_rows(perturb, sparse, np.arange(20), seed=8))


class _Memory:
    def reset_memory(self) -> None:
        pass


class _EventCounter(torch.nn.Module):
    """Class 1 when a sample holds more events than `threshold`: perturbations that add or remove events move it."""

    def __init__(self, threshold: float):
        super().__init__()
        self.threshold = torch.nn.Parameter(torch.tensor(float(threshold)))
        self.memory = _Memory()

    def forward(self, inputs):
        ((name, x),) = inputs.items()
        total = x.sum(dim=tuple(range(1, x.ndim)))
        logits = torch.stack([self.threshold - total, total - self.threshold], dim=-1)
        return SimpleNamespace(logits={name: logits}, memory=SimpleNamespace(representations={name: x.mean(1)}))


def test_curves_never_make_the_split_dense_and_repeat_exactly(monkeypatch):
    from neuromem.study.evaluate import _curves

    dense = _counts(150)
    sparse = from_dense(dense)
    events = dense.reshape(150, -1).sum(1)
    threshold = float(np.median(events))
    labels = (events > threshold).astype(np.int64)
    split = SplitData("shd", sparse, labels, labels, dense.shape[2:])
    largest = []
    original_dense = SparseCounts.dense

    def dense_rows(self, positions=None):
        assert positions is not None, "the whole split made dense"
        largest.append(len(positions))
        return original_dense(self, positions)

    def refuse(*args, **kwargs):
        raise AssertionError("np.asarray on the whole split")

    monkeypatch.setattr(SparseCounts, "dense", dense_rows)
    monkeypatch.setattr(SparseCounts, "__array__", refuse)
    network = _EventCounter(threshold)
    task, config = SimpleNamespace(datasets=("shd",)), SimpleNamespace(seed=3)
    evaluations = ["noise", "dropout", "mask"]
    first = _curves(config, task, {"shd": split}, {("shd",): network}, evaluations)
    assert largest and max(largest) <= EVAL_BATCH  # one batch at a time
    assert first == _curves(config, task, {"shd": split}, {("shd",): network}, evaluations)
    by = {(r["evaluation"], r["level"]): r["metrics"]["accuracy"] for r in first}
    assert by[("noise", 0.0)] == by[("dropout", 0.0)] == 1.0  # level 0: the clean samples
    assert by[("noise", 2.0)] < 0.75 and by[("dropout", 0.9)] < 0.75  # tripled / a tenth of the events: moved
