"""Train and evaluate one cell: a pure function of its config, seed and data.

`run_cell` builds the networks a task needs, trains them with Adam and a cosine
schedule on cross-entropy plus the memory module's own objective, evaluates on
the test split (each modality alone), and returns metrics, test-split memory
representations (the engrams) and the trained weights. It never asks which
memory module it is training: everything module-specific goes through the
`MemoryModule` interface.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from neuromem.accounting import ABLATION_COLUMNS, accounting_metrics, energy_profile
from neuromem.data import load_split
from neuromem.data.augment import Compose
from neuromem.data.batching import time_major_batch
from neuromem.data.sparse_counts import SparseCounts
from neuromem.data.sparse_counts import concatenate as join_counts
from neuromem.device import describe, deterministic, resolve_device
from neuromem.precision import autocast, grad_scaler
from neuromem.errors import NeuromemError
from neuromem.metrics.retrieval import retrieval_metrics
from neuromem.models import MemoryNetwork, build_network
from neuromem.neurons.delays import anneal_delays
from neuromem.train.config import CellConfig
from neuromem.train.rate_penalty import RateOptions, RateRecorder
from neuromem.train.tasks import EXTERNAL_TASKS, NUM_CONCEPTS, TASKS, Task, concept_of

EVAL_BATCH = 64  # inference batches; 256 made the N-MNIST evaluation the peak of a cell's memory (~2 GB)
ACCOUNTING_SAMPLES = 128  # counting costs a few forward passes; a test subset suffices


class ProgressSink:
    """Receives training progress; the CLI renders it, workers ignore it."""

    def phase(self, description: str, total: int) -> None: ...

    def advance(self, loss: float | None = None, accuracy: float | None = None) -> None: ...


@dataclass
class SplitData:
    """One data set's split as arrays, with the labels the task trains on."""

    name: str
    inputs: np.ndarray | SparseCounts  # (N, T, *shape) event counts
    labels: np.ndarray  # (N,) task labels (concepts for joint/parallel)
    original_labels: np.ndarray
    input_shape: tuple[int, ...]

    def take(self, indices: np.ndarray, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, T, ...) float counts (a view of time-major storage; on `device`, assembled there from the sparse
        cache, else on the CPU) and labels (on the CPU)."""
        return time_major_batch(self.inputs, indices, device), torch.from_numpy(self.labels[indices].astype(np.int64))


@dataclass
class CellOutcome:
    metrics: dict[str, Any]
    representations: dict[str, np.ndarray] = field(default_factory=dict)  # "<modality>/<array>" -> array
    state: dict[str, Any] = field(default_factory=dict)  # network name -> state_dict


def _load(task: Task, config: CellConfig, data_root: Path, split: str) -> dict[str, SplitData]:
    out = {}
    for name in task.datasets:
        if config.fold:
            dataset = None
            inputs, labels = _fold_part(name, config, data_root, split)
            input_shape = inputs.shape[2:]
        else:
            dataset = load_split(name, data_root, split, time_bins=config.time_bins)
            labels = np.asarray(dataset.labels, dtype=np.int64)
            inputs = dataset.inputs
            input_shape = dataset.input_shape
        if split == "train" and config.max_train_samples and len(labels) > config.max_train_samples:
            keep = np.sort(np.random.default_rng(config.seed).permutation(len(labels))[: config.max_train_samples])
            inputs, labels = inputs[keep], labels[keep]
        if split == "train" and config.train_also:
            inputs, labels = _with_extra_roots(name, config, inputs, labels)
        task_labels = concept_of(name, labels) if task.concept_labels else labels
        out[name] = SplitData(name, inputs, task_labels, labels, tuple(input_shape))
    return out


def _with_extra_roots(name: str, config: CellConfig, inputs: np.ndarray, labels: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The training samples plus every sample (both splits) of each `--train-also` root."""
    parts, part_labels = [inputs], [labels]
    for path, _ in config.train_also:
        for split in ("train", "test"):
            extra = load_split(name, path, split, time_bins=config.time_bins)
            extra_labels = np.asarray(extra.labels, dtype=np.int64)
            if extra.input_shape != tuple(inputs.shape[2:]) or extra_labels.max() > labels.max():
                raise NeuromemError(f"--train-also {path}: its {name} {split} split holds labels 0..{extra_labels.max()} "
                                    f"of shape {extra.input_shape}; the data root's training labels are 0..{labels.max()} "
                                    f"of shape {tuple(inputs.shape[2:])} (give a root of the same classes, e.g. a stand-in "
                                    "written with the same languages)")
            parts.append(extra.inputs)
            part_labels.append(extra_labels)
    return join_counts(parts), np.concatenate(part_labels)


def _fold_part(name: str, config: CellConfig, data_root: Path, role: str) -> tuple[np.ndarray, np.ndarray]:
    """One role ("train", "seen", "test") of a cross-validation fold: both splits pooled, rows chosen by
    `neuromem.train.protocol` (leave one speaker out)."""
    from neuromem.data.registry import get_dataset
    from neuromem.train.protocol import fold_rows

    splits = {split: load_split(name, data_root, split, time_bins=config.time_bins) for split in ("train", "test")}
    labels = {split: np.asarray(d.labels, dtype=np.int64) for split, d in splits.items()}
    chosen = fold_rows(get_dataset(name), data_root, config.fold, labels)[role].rows
    inputs = join_counts([splits[split].inputs[rows] for split, rows in chosen.items()])
    return inputs, np.concatenate([labels[split][rows] for split, rows in chosen.items()])


def _num_classes(task: Task, data: Mapping[str, SplitData]) -> dict[str, int]:
    if task.concept_labels:
        return {name: NUM_CONCEPTS for name in data}
    return {name: int(max(d.labels.max() + 1, 1)) for name, d in data.items()}


def _batches(
    data: Mapping[str, SplitData], batch_size: int, generator: np.random.Generator,
    fixed: Mapping[str, np.ndarray] | None = None, device: torch.device | None = None,
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """Shuffled batches of the first data set; other data sets contribute a partner of the
    same label for each sample (pairs of one concept across senses): drawn afresh, or its `fixed` one
    (`neuromem.train.pairing`, item pairing). Inputs assembled on `device` (None: the CPU)."""
    names = list(data)
    primary = data[names[0]]
    by_label = {n: {c: np.flatnonzero(data[n].labels == c) for c in np.unique(primary.labels)} for n in names[1:]}
    order = generator.permutation(len(primary.labels))
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        x, y = primary.take(indices, device)
        inputs = {names[0]: x}
        for n in names[1:]:
            if fixed is not None:
                inputs[n], _ = data[n].take(fixed[n][indices], device)
                continue
            partners = np.array([generator.choice(by_label[n][c]) for c in primary.labels[indices]])
            inputs[n], _ = data[n].take(partners, device)
        yield inputs, y


def _build(config: CellConfig, group: list[str], data: Mapping[str, SplitData], classes: Mapping[str, int],
           neuron: str | None = None) -> MemoryNetwork:
    try:
        return build_network(
            {d: data[d].input_shape for d in group},
            {d: classes[d] for d in group},
            config.memory,
            hidden=config.hidden,
            neuron=neuron or config.neuron,
            # the cell's neuron options are its own neuron model's (the dense twin's ReLU layers have none)
            neuron_params=dict(config.neuron_options) if neuron is None else {},
            memory_options=dict(config.memory_options),
            front_options=dict(config.front_options),
        )
    except (TypeError, ValueError) as error:
        flag = "--front-option" if config.front_options and "front end" in str(error) else "--memory-option"
        raise NeuromemError(f"{flag} for {config.memory!r}: {error}") from None


def _groups(task: Task) -> list[list[str]]:
    """Data sets per network: one shared network, or one per data set."""
    return [list(task.datasets)] if task.shared_network else [[d] for d in task.datasets]


def _train(
    network: MemoryNetwork,
    data: Mapping[str, SplitData],
    config: CellConfig,
    generator: np.random.Generator,
    progress: ProgressSink,
    label: str,
    after_epoch: Callable[[int], None] | None = None,
) -> None:
    """`after_epoch(epoch)` runs after every epoch but the last (the learning curve: it must not touch the network)."""
    steps_per_epoch = -(-len(next(iter(data.values())).labels) // config.batch_size)
    if config.weight_decay:
        optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    augment = {name: Compose(config.augment, split.input_shape) for name, split in data.items()}
    fixed = None
    if config.pairing == "item":  # one fixed partner per sample of the first sense, every epoch
        from neuromem.train.pairing import item_partners

        first = next(iter(data.values()))
        fixed = {n: item_partners(first.labels, split.labels, config.seed) for n, split in list(data.items())[1:]}
    # its own stream: an augmented run draws the same batches in the same order as an unaugmented one
    augment_generator = torch.Generator().manual_seed(config.seed)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=max(1, steps_per_epoch * config.epochs), pct_start=0.15
    )
    scaler = grad_scaler(config.precision, next(network.parameters()).device)  # fp16 only; a pass-through else
    # a firing-rate ceiling on every spiking layer (`--rate-option`); off (weight 0) unless the cell sets it
    rate = RateOptions.from_items(config.rate_options) if config.rate_options else RateOptions(weight=0.0)
    network.train()
    device = next(network.parameters()).device
    for epoch in range(config.epochs):
        anneal_delays(network, epoch / config.epochs)  # learnable delays (DCLS schedule); a no-op without them
        progress.phase(f"{label} epoch {epoch + 1}/{config.epochs}", steps_per_epoch)
        # batches assembled on the network's device (augmentations run on the CPU, so those are built there)
        for inputs, labels in _batches(data, config.batch_size, generator, fixed, None if config.augment else device):
            if config.augment:
                # back to time-major storage (the front ends read x.transpose(0, 1) contiguously)
                inputs = {name: augment[name](x, augment_generator).transpose(0, 1).contiguous().transpose(0, 1)
                          for name, x in inputs.items()}
            inputs, labels = {name: x.to(device) for name, x in inputs.items()}, labels.to(device)
            recorder = RateRecorder(network) if rate.active else contextlib.nullcontext()
            with recorder:
                output = network(inputs)
            loss = sum(F.cross_entropy(logits, labels) for logits in output.logits.values())
            loss = loss + network.memory.auxiliary_loss(output.memory, labels)
            if rate.active:
                loss = loss + recorder.penalty(rate)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            accuracy = np.mean([(lg.argmax(-1) == labels).float().mean().item() for lg in output.logits.values()])
            progress.advance(loss.item(), float(accuracy))
        if after_epoch is not None and epoch + 1 < config.epochs:
            after_epoch(epoch)
    anneal_delays(network, 1.0)  # trained delays end as whole steps: the network evaluated is the deployable one


def _learning_curve_point(network: MemoryNetwork, group: list[str], test: Mapping[str, SplitData],
                          curve: dict[str, list[float]]) -> None:
    """Test accuracy per sense after an epoch, on a copy of the network under a forked RNG: training goes on
    exactly as it would without it (same seed, same numbers)."""
    import copy

    with torch.random.fork_rng(devices=[]):
        probe = copy.deepcopy(network)
        for d in group:
            curve[d].append(float((_evaluate(probe, test[d])["predictions"] == test[d].labels).mean()))


@torch.no_grad()
def _evaluate(network: MemoryNetwork, split: SplitData) -> dict[str, np.ndarray]:
    """One modality alone through the network: predictions and memory representations."""
    network.eval()
    network.memory.reset_memory()  # test-time writes start from the trained memories every time
    predictions, representations, device = [], [], next(network.parameters()).device
    for start in range(0, len(split.labels), EVAL_BATCH):
        x, _ = split.take(np.arange(start, min(start + EVAL_BATCH, len(split.labels))), device)
        output = network({split.name: x})
        predictions.append(output.logits[split.name].argmax(-1).cpu().numpy())
        representations.append(output.memory.representations[split.name].float().cpu().numpy())
    network.memory.reset_memory()
    return {
        "predictions": np.concatenate(predictions),
        "representations": np.concatenate(representations),
    }


@torch.no_grad()
def _cross_modal_retrieval(
    network: MemoryNetwork, cue: SplitData, target_name: str, gallery: np.ndarray, gallery_labels: np.ndarray
) -> dict[str, float]:
    """Cue with one sense, recall the other's memory; ranked against the target's own test representations."""
    network.eval()
    network.memory.reset_memory()
    recalled, device = [], next(network.parameters()).device
    for start in range(0, len(cue.labels), EVAL_BATCH):
        x, _ = cue.take(np.arange(start, min(start + EVAL_BATCH, len(cue.labels))), device)
        spikes = network.encode({cue.name: x})[cue.name]
        recalled.append(network.memory.retrieve(cue.name, spikes, target_name).float().cpu())
    network.memory.reset_memory()
    scores = retrieval_metrics(torch.cat(recalled), torch.from_numpy(gallery), torch.from_numpy(cue.labels),
                               torch.from_numpy(gallery_labels))
    return {f"retrieval_{cue.name}_to_{target_name}_{k}": v for k, v in scores.items()}


def _account(network: MemoryNetwork, twin: MemoryNetwork, group: list[str], test: Mapping[str, SplitData],
             profile_name: str = "horowitz-45nm", one_sense: bool = False) -> dict[str, Any]:
    """Accounting columns (NeuroBench definitions) of the trained network and of its
    ANN-equivalent twin on the same test samples, each modality fed alone. The twin is
    untrained: under the dense-MAC assumption its cost depends only on its architecture. Chip costs are
    recorded per sense (`<metric>_<sense>`), and under the plain names too where the cell has one sense
    (`one_sense`: not a parallel pair, whose networks are each a group of one sense)."""
    network.eval()
    twin.eval()
    per_modality = {}
    with torch.no_grad():
        for d in group:
            rows = np.arange(min(ACCOUNTING_SAMPLES, len(test[d].labels)))
            chunks = [{d: test[d].take(rows[i:i + EVAL_BATCH])[0]} for i in range(0, len(rows), EVAL_BATCH)]
            per_modality[d] = accounting_metrics(network, twin, chunks, profile=energy_profile(profile_name), batch_dim=0)
    merged: dict[str, Any] = {c: float(np.mean([per_modality[d][c] for d in group])) for c in ABLATION_COLUMNS}
    merged["layer_sparsity"] = {k: v for d in group for k, v in per_modality[d]["layer_sparsity"].items()}
    merged["energy_assumptions"] = [f"[{d}] {line}" for d in group for line in per_modality[d]["energy_assumptions"]]
    merged["energy_profile"] = per_modality[group[0]]["energy_profile"]
    for d in group:
        merged.update({f"{c}_{d}": per_modality[d][c] for c in ABLATION_COLUMNS})
        merged[f"accounting_{d}"] = per_modality[d]["accounting"]
        merged[f"ann_accounting_{d}"] = per_modality[d]["ann_accounting"]  # `neuromem reprice` prices these counts
    from neuromem.export.hardware import chip_metrics

    for d in group:  # each sense's chain of Loihi layers, run alone: its Loihi costs ({} for other cells)
        split = test[d]
        x, _ = split.take(np.arange(min(ACCOUNTING_SAMPLES, len(split.labels))))
        chip = chip_metrics(network, d, split.input_shape, x)
        merged.update({f"{k}_{d}": v for k, v in chip.items()})
        if one_sense:
            merged.update(chip)
    return merged


def _merge_accounts(accounts: list[dict[str, Any]]) -> dict[str, Any]:
    """One network's accounting as is. Separate networks (parallel) each see only their own
    modality's samples, so per-sample costs are averaged over modalities, as for a joint network."""
    if len(accounts) == 1:
        return accounts[0]
    merged = {k: v for account in accounts for k, v in account.items()}
    for column in ("synops_per_sample", "dense_macs_per_sample", "energy_pj_per_sample", "ann_energy_pj_per_sample"):
        merged[column] = float(np.mean([a[column] for a in accounts]))
    merged["activation_sparsity"] = float(np.mean([a["activation_sparsity"] for a in accounts]))
    merged["energy_ratio"] = merged["ann_energy_pj_per_sample"] / merged["energy_pj_per_sample"]
    merged["layer_sparsity"] = {k: v for a in accounts for k, v in a["layer_sparsity"].items()}
    merged["energy_assumptions"] = [line for a in accounts for line in a["energy_assumptions"]]
    return merged


def _run_external(config: CellConfig, data_root: Path, progress: ProgressSink) -> CellOutcome:
    module_name, _, function_name = EXTERNAL_TASKS[config.modality].partition(":")
    runner = getattr(importlib.import_module(module_name), function_name)
    started = time.perf_counter()
    outcome = runner(memory=config.memory, seed=config.seed, epochs=config.epochs, data_root=data_root, device=config.device,
                     progress=progress, train_limit=config.max_train_samples, **dict(config.task_options),
                     **dict(config.memory_options))
    metrics, state = outcome if isinstance(outcome, tuple) else (outcome, {})  # (metrics, weights) or metrics
    metrics["wall_seconds"] = round(time.perf_counter() - started, 2)
    return CellOutcome(metrics, state=state)


def run_cell(config: CellConfig, data_root: Path, progress: ProgressSink | None = None) -> CellOutcome:
    """Train and evaluate one cell. Same config + same data -> same numbers."""
    progress = progress or ProgressSink()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    deterministic(device)
    if config.modality in EXTERNAL_TASKS:
        return _run_external(config, data_root, progress)
    task = TASKS.get(config.modality)
    if task is None:
        valid = ", ".join([*TASKS, *EXTERNAL_TASKS])
        raise NeuromemError(f"--modality {config.modality!r} is not known; valid: {valid}")
    generator = np.random.default_rng(config.seed)
    started = time.perf_counter()

    train, test = _load(task, config, data_root, "train"), _load(task, config, data_root, "test")
    # a cross-validation fold also tests new recordings of the speakers it trained on
    seen = _load(task, config, data_root, "seen") if config.fold else {}
    classes = _num_classes(task, train)
    metrics: dict[str, Any] = {"parameters": 0}
    outcome = CellOutcome(metrics)
    accounts = []
    for group in _groups(task):
        network = _build(config, group, train, classes).to(device)
        metrics["parameters"] += sum(p.numel() for p in network.parameters())
        if config.init_from:  # another cell's weights where they fit (`neuromem.train.transfer`)
            from neuromem.train.transfer import initialise

            metrics.update(initialise(network, group, config.init_from, config.freeze))
        name = "+".join(group)
        curve: dict[str, list[float]] = {d: [] for d in group}
        precision = contextlib.ExitStack()  # --precision: training and evaluation under autocast, accounting not
        precision.enter_context(autocast(config.precision, device))
        _train(network, {d: train[d] for d in group}, config, generator, progress, name,
               lambda epoch: _learning_curve_point(network, group, test, curve))
        # weights saved as CPU tensors: a GPU-trained checkpoint loads on a CPU-only machine
        outcome.state[name] = {key: value.detach().cpu() for key, value in network.state_dict().items()}
        for d in group:
            parts = [("train", train[d]), ("test", test[d])] + ([("seen", seen[d])] if d in seen else [])
            for split_name, split in parts:
                result = _evaluate(network, split)
                metrics[f"{split_name}_accuracy_{d}"] = float((result["predictions"] == split.labels).mean())
                if split_name == "test":
                    outcome.representations[f"{d}/representations"] = result["representations"]
                    outcome.representations[f"{d}/labels"] = split.original_labels
                    outcome.representations[f"{d}/digits"] = concept_of(d, split.original_labels)
                    outcome.representations[f"{d}/predictions"] = result["predictions"]
                    metrics[f"learning_curve_{d}"] = [*curve[d], metrics[f"test_accuracy_{d}"]]  # per epoch
        for cue, target in itertools.permutations(group, 2):
            metrics.update(_cross_modal_retrieval(network, test[cue], target,
                                                  outcome.representations[f"{target}/representations"], test[target].labels))
        precision.close()
        network.cpu()  # accounting counts operations (and runs the Loihi chain) on the CPU
        accounts.append(_account(network, _build(config, group, train, classes, neuron="dense"), group, test,
                                 config.energy_profile, one_sense=len(task.datasets) == 1))
    metrics["learning_curve"] = [float(np.mean(epoch)) for epoch in zip(*(metrics[f"learning_curve_{d}"] for d in task.datasets))]
    for split_name in ("train", "test", "seen"):
        if all(f"{split_name}_accuracy_{d}" in metrics for d in task.datasets):
            metrics[f"{split_name}_accuracy"] = float(np.mean([metrics[f"{split_name}_accuracy_{d}"] for d in task.datasets]))
    if config.fold:  # what a voice never heard costs: seen-speaker minus unseen-speaker accuracy
        metrics["speaker_gap"] = metrics["seen_accuracy"] - metrics["test_accuracy"]
        metrics["protocol"] = "leave one speaker out"
    metrics.update(_merge_accounts(accounts))
    metrics.update(describe(device))  # where it ran: recorded, not part of the cell's identity
    metrics["wall_seconds"] = round(time.perf_counter() - started, 2)
    return outcome
