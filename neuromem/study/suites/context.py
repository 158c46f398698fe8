"""One finished cell as the memory suites see it: its data, its rebuilt networks, cached embeddings and
seeded generators, and copies of its network trained on parts of its data (cached, so that two suites
needing the same copy train it once; each copy is a pure function of the cell's config and the part). The networks
run on the context's device (`--device`): batches are built on the CPU and moved to it, results come back to the
CPU, as `neuromem evaluate`'s perturbation curves do."""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from neuromem.train.config import CellConfig

EPOCHS_CAP = 3  # copies trained by a suite: the cell's own epochs, at most this many (--suite-epochs overrides)
SUPPORT_PER_CLASS = 50  # training samples per class a prototype (nearest class mean) is made of, at most


class NotApplicable(Exception):
    """A suite (or one of its curves) that does not apply to a cell: the one-line reason."""


@dataclass(frozen=True)
class SuiteOptions:
    """Budget of the suites, one record for all: `epochs` for the copies a suite trains (None: the cell's own,
    capped at EPOCHS_CAP), `episodes` of each few-shot setting, `subsets` of classes for each N-way task."""

    epochs: int | None = None
    episodes: int = 20
    subsets: int = 5

    def epochs_for(self, config: CellConfig) -> int:
        return self.epochs if self.epochs is not None else max(1, min(config.epochs, EPOCHS_CAP))


class CellContext:
    def __init__(self, config: CellConfig, checkpoint: Path, data_root: Path, options: SuiteOptions,
                 device: torch.device | str = "cpu") -> None:
        from neuromem.study.evaluate import load_cell

        self.config, self.data_root, self.options, self.device = config, data_root, options, torch.device(device)
        self.task, self.train, self.test, self.networks = load_cell(config, checkpoint, data_root, self.device)
        self._cache: dict[Any, Any] = {}

    def rng(self, suite: str, curve: str, level: Any = "") -> np.random.Generator:
        """Seeded by (cell seed, suite, curve, level): same cell, same draws."""
        return np.random.default_rng(zlib.crc32(f"{self.config.seed}/{suite}/{curve}/{level!r}".encode()))

    def seed(self, suite: str, curve: str) -> int:
        return zlib.crc32(f"{self.config.seed}/{suite}/{curve}".encode())

    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def support_rows(self, dataset: str) -> np.ndarray:
        """Up to SUPPORT_PER_CLASS training rows of every class (seeded), sorted: what prototypes are made of."""
        def make() -> np.ndarray:
            labels, rng = self.train[dataset].labels, self.rng("support", dataset)
            rows = [rng.permutation(np.flatnonzero(labels == c))[:SUPPORT_PER_CLASS] for c in np.unique(labels)]
            return np.sort(np.concatenate(rows))
        return self.cached(("support", dataset), make)

    def embeddings(self, group: tuple[str, ...], dataset: str, split: str, rows: np.ndarray | None = None,
                   network=None, key: Any = "cell") -> np.ndarray:
        """The memory's representations (the readout's input) of `rows` of a split, from the cell's network of
        `group` (or `network`, cached under `key`)."""
        data = (self.train if split == "train" else self.test)[dataset]
        rows = np.arange(len(data.labels)) if rows is None else rows
        net = network if network is not None else self.networks[group]
        return self.cached(("embeddings", key, group, dataset, split, rows.tobytes()),
                           lambda: representations(net, data, rows))

    def trained_copy(self, name: str, group: tuple[str, ...], parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A fresh copy of the cell's network (same config; torch seeded by (cell seed, `name`)) trained on each
        part in turn, `parts` = [{dataset: SplitData}]: the network's state after each part (cached by `name`)."""
        def make() -> list[dict[str, Any]]:
            from neuromem.device import deterministic
            from neuromem.train import trainer

            config = replace(self.config, epochs=self.options.epochs_for(self.config))
            deterministic(self.device)
            torch.manual_seed(self.seed("copy", name))
            network = trainer._build(config, list(group), self.train, trainer._num_classes(self.task, self.train))
            network.to(self.device)
            generator = np.random.default_rng(self.seed("batches", name))
            states = []
            for index, part in enumerate(parts):
                trainer._train(network, part, config, generator, trainer.ProgressSink(), f"{name} part {index + 1}")
                states.append(copy.deepcopy(network.state_dict()))
            return states
        return self.cached(("copy", name), make)

    def network_from(self, group: tuple[str, ...], state: dict[str, Any]):
        """A network of the cell's architecture holding `state`, in eval mode."""
        net = copy.deepcopy(self.networks[group])
        net.load_state_dict(state)
        return net.eval()


@torch.no_grad()
def representations(network, split, rows: np.ndarray) -> np.ndarray:
    from neuromem.train.trainer import EVAL_BATCH

    network.eval()
    network.memory.reset_memory()
    out, device = [], _device_of(network)
    for start in range(0, len(rows), EVAL_BATCH):
        x, _ = split.take(rows[start:start + EVAL_BATCH], device)
        out.append(network({split.name: x}).memory.representations[split.name].float().cpu().numpy())
    network.memory.reset_memory()
    return np.concatenate(out) if out else np.zeros((0, network.memory.output_size), dtype=np.float32)


@torch.no_grad()
def predictions(network, split, rows: np.ndarray, writes: bool = True, inputs: Callable | None = None) -> np.ndarray:
    """The readout's predictions for `rows` of a split, batch after batch as the trainer evaluates. `writes`:
    a memory that writes at test time keeps what earlier batches wrote (the trainer's way); False resets it
    before every batch, so every answer comes from the trained memory alone (a module reads before it writes,
    so a batch never sees its own writes). `inputs(x, rows)`: a transform of each batch (batch-major counts)."""
    from neuromem.train.trainer import EVAL_BATCH

    network.eval()
    network.memory.reset_memory()
    out, device = [], _device_of(network)
    for start in range(0, len(rows), EVAL_BATCH):
        chunk = rows[start:start + EVAL_BATCH]
        x, _ = split.take(chunk, None if inputs is not None else device)
        if inputs is not None:  # on the CPU, before the batch moves
            x = inputs(x, chunk)
        if not writes:
            network.memory.reset_memory()
        out.append(network({split.name: x.to(device)}).logits[split.name].argmax(-1).cpu().numpy())
    network.memory.reset_memory()
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _device_of(network) -> torch.device:
    return next(network.parameters()).device


def subset(split, rows: np.ndarray, labels: np.ndarray | None = None):
    """The rows of a SplitData (labels replaced by `labels`, given for those rows, if any)."""
    return replace(split, inputs=split.inputs[rows], labels=split.labels[rows] if labels is None else labels,
                   original_labels=split.original_labels[rows])


def prototype_accuracy(support: np.ndarray, support_labels: np.ndarray, queries: np.ndarray,
                       query_labels: np.ndarray) -> float:
    """Nearest class mean by cosine: L2-normalised embeddings, one mean per class of the support, each query
    labelled by its most similar mean."""
    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    classes = np.unique(support_labels)
    means = unit(np.stack([unit(support[support_labels == c]).mean(0) for c in classes]))
    guess = classes[np.argmax(unit(queries) @ means.T, axis=1)]
    return float((guess == query_labels).mean())
