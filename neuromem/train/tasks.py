"""Modalities a cell can train on, as data: which data sets feed it, and how.

- a single data set (every registered one: "shd", "nmnist", "ssc", ...): one
  network, the data set's own labels;
- "joint": one network with both front ends and one shared memory, trained on
  pairs (visual digit d, spoken digit d) — labels are concepts (digits);
- "parallel": two separate networks, one per data set, with concept labels,
  for comparison with "joint".
- "trimodal": the dense text/image/audio memory network (`neuromem.dense`).
Concepts come from each data set's registry entry (`concepts`): SHD's English
and German digit d are both concept d, N-MNIST's digit d is concept d; a class
that names no concept (SSC's "dog") is NO_CONCEPT, so a concept-labelled task
takes only data sets whose every class is a concept.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from neuromem.data.base import NO_CONCEPT, NUM_CONCEPTS
from neuromem.data.registry import dataset_names, get_dataset


@dataclass(frozen=True)
class Task:
    name: str
    datasets: tuple[str, ...]
    concept_labels: bool  # map labels to the shared digit concepts
    shared_network: bool  # one network over all data sets (else one per data set)


# tasks over more than one data set; each registered data set is also a task of its own
CROSS_MODAL_TASKS: dict[str, Task] = {
    "joint": Task("joint", ("nmnist", "shd"), concept_labels=True, shared_network=True),
    "parallel": Task("parallel", ("nmnist", "shd"), concept_labels=True, shared_network=False),
}


class _Tasks(Mapping):
    """name -> Task: one per registered data set (read live, so a data set registered later is a task too),
    then the cross-modal ones."""

    def _all(self) -> dict[str, Task]:
        own = {name: Task(name, (name,), concept_labels=False, shared_network=True) for name in dataset_names()}
        return {**own, **CROSS_MODAL_TASKS}

    def __getitem__(self, name: str) -> Task:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


TASKS: Mapping[str, Task] = _Tasks()

# Modalities trained by their own runner (dense paths): name -> "module:function" with the
# signature of `neuromem.dense.trimodal.run_trimodal_cell`, returning flat metrics (or (metrics, weights)).
EXTERNAL_TASKS: dict[str, str] = {"trimodal": "neuromem.dense.trimodal:trimodal_cell"}
# how `neuromem evaluate` evaluates such a task's finished cells: "module:function" with the signature of
# `neuromem.dense.trimodal_evaluate.evaluate_trimodal_cell` (config, checkpoint, data root, evaluations) -> rows
EXTERNAL_EVALUATORS: dict[str, str] = {"trimodal": "neuromem.dense.trimodal_evaluate:evaluate_trimodal_cell"}
EXTERNAL_TASK_DATASETS: dict[str, tuple[str, ...]] = {"trimodal": ("shd",)}  # images come from scikit-learn


CROSS_MODAL_EPOCHS = 5  # joint / parallel / external tasks: one budget for both senses, as they were measured


def default_epochs(modality: str) -> int:
    """Training epochs of a cell when `--epochs` is not given: a single data set's own default (its
    registry entry), else CROSS_MODAL_EPOCHS."""
    task = TASKS.get(modality)
    if task is not None and len(task.datasets) == 1:
        return get_dataset(task.datasets[0]).spec.epochs
    return CROSS_MODAL_EPOCHS


def concept_of(dataset: str, labels: np.ndarray) -> np.ndarray:
    """Concept id of each label of `dataset`, from its registry entry (NO_CONCEPT where a class names none)."""
    return get_dataset(dataset).concepts(np.asarray(labels))


__all__ = ["Task", "TASKS", "CROSS_MODAL_TASKS", "EXTERNAL_TASKS", "EXTERNAL_EVALUATORS", "EXTERNAL_TASK_DATASETS", "NUM_CONCEPTS",
           "NO_CONCEPT", "concept_of", "default_epochs", "CROSS_MODAL_EPOCHS"]
