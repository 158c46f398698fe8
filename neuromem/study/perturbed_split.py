"""A test split perturbed as its batches are taken, for the robustness and completion evaluations.

The split stays what the trainer loaded (the cache's sparse counts, memory-mapped): each batch's rows are made
dense and perturbed when the evaluation takes them (`neuromem.study.perturb.perturb_rows`, one generator per
sample seeded by (seed, position)), so an evaluation holds one batch at a time however large the split, and two
passes over it (accuracy, then cross-modal recall) see the same perturbed samples.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from neuromem.data.batching import time_major_batch
from neuromem.study.perturb import Perturbation, perturb_rows
from neuromem.train.trainer import SplitData


@dataclass
class PerturbedSplit(SplitData):
    perturbation: Perturbation | None = None
    seed: int = 0

    @classmethod
    def of(cls, split: SplitData, perturbation: Perturbation, seed: int) -> "PerturbedSplit":
        return cls(**{f.name: getattr(split, f.name) for f in fields(SplitData)}, perturbation=perturbation, seed=seed)

    def take(self, indices: np.ndarray, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        counts = perturb_rows(self.perturbation, self.inputs, indices, self.seed)  # perturbed on the CPU
        return (time_major_batch(counts, np.arange(len(counts)), device),
                torch.from_numpy(self.labels[indices].astype(np.int64)))
