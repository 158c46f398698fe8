"""Modalities a cell can train on, as data: which data sets feed it, and how.

- a single data set ("shd", "nmnist"): one network, the data set's own labels;
- "joint": one network with both front ends and one shared memory, trained on
  pairs (visual digit d, spoken digit d) — labels are concepts (digits);
- "parallel": two separate networks, one per data set, with concept labels,
  for comparison with "joint".
- "trimodal": the dense text/image/audio memory network (`neuromem.dense`).
Spoken SHD labels 0-9 are English digits and 10-19 German ones: concept = label % 10.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Task:
    name: str
    datasets: tuple[str, ...]
    concept_labels: bool  # map labels to the shared digit concepts
    shared_network: bool  # one network over all data sets (else one per data set)


TASKS: dict[str, Task] = {
    "shd": Task("shd", ("shd",), concept_labels=False, shared_network=True),
    "nmnist": Task("nmnist", ("nmnist",), concept_labels=False, shared_network=True),
    "joint": Task("joint", ("nmnist", "shd"), concept_labels=True, shared_network=True),
    "parallel": Task("parallel", ("nmnist", "shd"), concept_labels=True, shared_network=False),
}

# Modalities trained by their own runner (dense paths): name -> "module:function" with the
# signature of `neuromem.dense.trimodal.run_trimodal_cell`, returning flat metrics.
EXTERNAL_TASKS: dict[str, str] = {"trimodal": "neuromem.dense.trimodal:run_trimodal_cell"}
EXTERNAL_TASK_DATASETS: dict[str, tuple[str, ...]] = {"trimodal": ("shd",)}  # images come from scikit-learn

NUM_CONCEPTS = 10


def concept_of(dataset: str, labels: np.ndarray) -> np.ndarray:
    """Digit concept of each label: N-MNIST labels are digits; SHD labels 10-19 are German 0-9."""
    return labels % NUM_CONCEPTS if dataset == "shd" else labels.copy()
