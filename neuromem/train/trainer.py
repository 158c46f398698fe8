"""Train and evaluate one cell: a pure function of its config, seed and data.

`run_cell` builds the networks a task needs, trains them with Adam and a cosine
schedule on cross-entropy plus the memory module's own objective, evaluates on
the test split (each modality alone), and returns metrics, test-split memory
representations (the engrams) and the trained weights. It never asks which
memory module it is training: everything module-specific goes through the
`MemoryModule` interface.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from neuromem.data import load_split
from neuromem.errors import NeuromemError
from neuromem.models import MemoryNetwork, build_network
from neuromem.train.config import CellConfig
from neuromem.train.tasks import TASKS, NUM_CONCEPTS, Task, concept_of

EVAL_BATCH = 256


class ProgressSink:
    """Receives training progress; the CLI renders it, workers ignore it."""

    def phase(self, description: str, total: int) -> None: ...

    def advance(self, loss: float | None = None, accuracy: float | None = None) -> None: ...


@dataclass
class SplitData:
    """One data set's split as arrays, with the labels the task trains on."""

    name: str
    inputs: np.ndarray  # (N, T, *shape) event counts
    labels: np.ndarray  # (N,) task labels (concepts for joint/parallel)
    original_labels: np.ndarray
    input_shape: tuple[int, ...]

    def take(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        order = np.sort(indices)  # sorted reads are faster from a memory map
        inverse = np.argsort(np.argsort(indices))
        x = np.asarray(self.inputs[order], dtype=np.float32)[inverse]
        return torch.from_numpy(x), torch.from_numpy(self.labels[indices].astype(np.int64))


@dataclass
class CellOutcome:
    metrics: dict[str, Any]
    representations: dict[str, np.ndarray] = field(default_factory=dict)  # "<modality>/<array>" -> array
    state: dict[str, Any] = field(default_factory=dict)  # network name -> state_dict


def _load(task: Task, config: CellConfig, data_root: Path, split: str) -> dict[str, SplitData]:
    out = {}
    for name in task.datasets:
        dataset = load_split(name, data_root, split, time_bins=config.time_bins)
        labels = np.asarray(dataset.labels, dtype=np.int64)
        inputs = dataset.inputs
        if split == "train" and config.max_train_samples and len(labels) > config.max_train_samples:
            keep = np.sort(np.random.default_rng(config.seed).permutation(len(labels))[: config.max_train_samples])
            inputs, labels = inputs[keep], labels[keep]
        task_labels = concept_of(name, labels) if task.concept_labels else labels
        out[name] = SplitData(name, inputs, task_labels, labels, tuple(dataset.input_shape))
    return out


def _num_classes(task: Task, data: Mapping[str, SplitData]) -> dict[str, int]:
    if task.concept_labels:
        return {name: NUM_CONCEPTS for name in data}
    return {name: int(max(d.labels.max() + 1, 1)) for name, d in data.items()}


def _batches(
    data: Mapping[str, SplitData], batch_size: int, generator: np.random.Generator
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """Shuffled batches of the first data set; other data sets contribute a partner of the
    same label for each sample (pairs of one concept across senses)."""
    names = list(data)
    primary = data[names[0]]
    by_label = {n: {c: np.flatnonzero(data[n].labels == c) for c in np.unique(primary.labels)} for n in names[1:]}
    order = generator.permutation(len(primary.labels))
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        x, y = primary.take(indices)
        inputs = {names[0]: x}
        for n in names[1:]:
            partners = np.array([generator.choice(by_label[n][c]) for c in primary.labels[indices]])
            inputs[n], _ = data[n].take(partners)
        yield inputs, y


def _networks(task: Task, config: CellConfig, data: Mapping[str, SplitData]) -> dict[str, tuple[MemoryNetwork, list[str]]]:
    """name -> (network, the data sets it trains on). One shared network, or one per data set."""
    classes = _num_classes(task, data)
    groups = [list(task.datasets)] if task.shared_network else [[d] for d in task.datasets]
    networks = {}
    for group in groups:
        try:
            network = build_network(
                {d: data[d].input_shape for d in group},
                {d: classes[d] for d in group},
                config.memory,
                hidden=config.hidden,
                neuron=config.neuron,
                memory_options=dict(config.memory_options),
            )
        except (TypeError, ValueError) as error:
            raise NeuromemError(f"--memory-option for {config.memory!r}: {error}") from None
        networks["+".join(group)] = (network, group)
    return networks


def _train(
    network: MemoryNetwork,
    data: Mapping[str, SplitData],
    config: CellConfig,
    generator: np.random.Generator,
    progress: ProgressSink,
    label: str,
) -> None:
    steps_per_epoch = -(-len(next(iter(data.values())).labels) // config.batch_size)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=max(1, steps_per_epoch * config.epochs), pct_start=0.15
    )
    network.train()
    for epoch in range(config.epochs):
        progress.phase(f"{label} epoch {epoch + 1}/{config.epochs}", steps_per_epoch)
        for inputs, labels in _batches(data, config.batch_size, generator):
            output = network(inputs)
            loss = sum(F.cross_entropy(logits, labels) for logits in output.logits.values())
            loss = loss + network.memory.auxiliary_loss(output.memory, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
            optimizer.step()
            schedule.step()
            accuracy = np.mean([(lg.argmax(-1) == labels).float().mean().item() for lg in output.logits.values()])
            progress.advance(loss.item(), float(accuracy))


@torch.no_grad()
def _evaluate(network: MemoryNetwork, split: SplitData) -> dict[str, np.ndarray]:
    """One modality alone through the network: predictions, representations, spike rates."""
    network.eval()
    network.memory.reset_memory()  # test-time writes start from the trained memories every time
    predictions, representations, spike_counts, elements = [], [], 0.0, 0
    for start in range(0, len(split.labels), EVAL_BATCH):
        x, _ = split.take(np.arange(start, min(start + EVAL_BATCH, len(split.labels))))
        output = network({split.name: x})
        predictions.append(output.logits[split.name].argmax(-1).numpy())
        representations.append(output.memory.representations[split.name].float().numpy())
        spikes = output.spikes[split.name]
        spike_counts += float((spikes != 0).sum())
        elements += spikes.numel()
    network.memory.reset_memory()
    return {
        "predictions": np.concatenate(predictions),
        "representations": np.concatenate(representations),
        "nonzero_fraction": np.array(spike_counts / max(elements, 1)),
    }


def run_cell(config: CellConfig, data_root: Path, progress: ProgressSink | None = None) -> CellOutcome:
    """Train and evaluate one cell. Same config + same data -> same numbers."""
    task = TASKS.get(config.modality)
    if task is None:
        raise NeuromemError(f"--modality {config.modality!r} is not a spiking task; valid: {', '.join(TASKS)}")
    progress = progress or ProgressSink()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    generator = np.random.default_rng(config.seed)
    started = time.perf_counter()

    train, test = _load(task, config, data_root, "train"), _load(task, config, data_root, "test")
    networks = _networks(task, config, train)
    metrics: dict[str, Any] = {"parameters": sum(p.numel() for n, _ in networks.values() for p in n.parameters())}
    outcome = CellOutcome(metrics)
    for name, (network, group) in networks.items():
        _train(network, {d: train[d] for d in group}, config, generator, progress, name)
        outcome.state[name] = network.state_dict()
        for d in group:
            for split_name, split in (("train", train[d]), ("test", test[d])):
                result = _evaluate(network, split)
                metrics[f"{split_name}_accuracy_{d}"] = float((result["predictions"] == split.labels).mean())
                if split_name == "test":
                    metrics[f"activation_sparsity_{d}"] = 1.0 - float(result["nonzero_fraction"])
                    outcome.representations[f"{d}/representations"] = result["representations"]
                    outcome.representations[f"{d}/labels"] = split.original_labels
                    outcome.representations[f"{d}/digits"] = concept_of(d, split.original_labels)
                    outcome.representations[f"{d}/predictions"] = result["predictions"]
    for split_name in ("train", "test"):
        metrics[f"{split_name}_accuracy"] = float(np.mean([metrics[f"{split_name}_accuracy_{d}"] for d in task.datasets]))
    metrics["activation_sparsity"] = float(np.mean([metrics[f"activation_sparsity_{d}"] for d in task.datasets]))
    metrics["wall_seconds"] = round(time.perf_counter() - started, 2)
    return outcome
