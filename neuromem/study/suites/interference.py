"""Interference and continual learning: a fresh copy of the cell's network (same config; torch and batch
order seeded by cell seed and protocol) is trained on a first task, then on a second, with the trainer's own
loop (`--suite-epochs` epochs each, default the cell's epochs capped at 3; its own learning-rate schedule
per task), no replay and no regulariser. Level 1: after the first task; level 2: after the second.

- "class-incremental": the classes split in two halves, one output head for all (no task identity at test
  time): where every class of the data set names a concept (digits), concepts 0-4 then 5-9 (SHD: both
  languages' digits 0-4, then 5-9), else the first half of the labels, then the rest.
- "domain-incremental": where a data set declares two or more domains of the same concepts (its registry
  entry's `domains`, SHD: the English digits, then the German ones), one domain then the next, labelled by
  concept; skipped, with the reason, elsewhere.

Each row: `task1_accuracy` (test samples of the first task), `task2_accuracy` (after the second),
`average_accuracy` (mean over the tasks trained so far) and, after the second, `forgetting` (task-1
accuracy after task 1 minus after task 2). A memory that writes at test time (`adapts_at_test_time`) is
also tested without its writes (`*_without_writes`: the memory reset before every batch, so every answer
comes from what training stored)."""

from __future__ import annotations

from typing import Any

import numpy as np

from neuromem.data.base import NO_CONCEPT
from neuromem.study.suites.context import CellContext, NotApplicable, predictions, subset
from neuromem.train.tasks import concept_of


def class_halves(ctx: CellContext, group: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], str]:
    """Per data set of the group: the task label of each train / test row mapped to 0 (first half) or 1,
    and a description of the split."""
    def keys(d: str, split) -> tuple[np.ndarray, bool]:
        concepts = concept_of(d, split.original_labels)
        every = (concept_of(d, np.unique(np.concatenate([ctx.train[d].original_labels, ctx.test[d].original_labels])))
                 != NO_CONCEPT).all()
        return (concepts, True) if every else (split.labels, False)

    halves = {"train": {}, "test": {}}
    described = ""
    for d in group:
        train_keys, by_concept = keys(d, ctx.train[d])
        values = np.unique(train_keys)
        first = values[: max(1, len(values) // 2)]
        for name, split in (("train", ctx.train[d]), ("test", ctx.test[d])):
            halves[name][d] = np.where(np.isin(keys(d, split)[0], first), 0, 1)
        described = (f"{'concepts' if by_concept else 'classes'} {first.min()}-{first.max()} then "
                     f"{values[len(first)]}-{values.max()}")
    return halves["train"], halves["test"], described


def domain_parts(ctx: CellContext, group: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], str]:
    from neuromem.data.registry import get_dataset

    if len(group) != 1:
        raise NotApplicable("domain-incremental: one data set per network only (a cross-modal network pairs its senses)")
    (d,) = group
    entry = get_dataset(d)
    domains = entry.domains(ctx.train[d].original_labels)
    if len(domains) < 2:
        raise NotApplicable(f"domain-incremental: {d} declares one domain (a data set entry's domains() names two or "
                            "more, e.g. SHD's English and German digits)")
    if (concept_of(d, ctx.train[d].original_labels) == NO_CONCEPT).any():
        raise NotApplicable(f"domain-incremental: not every class of {d} names a concept to share across its domains")
    names = list(domains)[:2]
    test_domains = entry.domains(ctx.test[d].original_labels)

    def index(masks: dict[str, np.ndarray]) -> np.ndarray:
        out = np.full(len(next(iter(masks.values()))), -1)
        for i, name in enumerate(names):
            out[masks[name]] = i
        return out

    return {d: index(domains)}, {d: index(test_domains)}, f"{names[0]} then {names[1]} ({d}), labelled by concept"


PROTOCOLS = {"class-incremental": class_halves, "domain-incremental": domain_parts}


def _labels(ctx: CellContext, d: str, split, protocol: str) -> np.ndarray:
    return concept_of(d, split.original_labels) if protocol == "domain-incremental" else split.labels


def task_states(ctx: CellContext, group: tuple[str, ...], protocol: str) -> tuple[list[dict], dict[str, np.ndarray], str]:
    """The copy's state after each task (trained once per cell and protocol), the test rows' task index, the split."""
    train_part, test_part, described = PROTOCOLS[protocol](ctx, group)
    parts = []
    for task in (0, 1):
        part = {}
        for d in group:
            rows = np.flatnonzero(train_part[d] == task)
            if len(rows) == 0:
                raise NotApplicable(f"{protocol}: task {task + 1} has no training samples of {d}")
            part[d] = subset(ctx.train[d], rows, _labels(ctx, d, ctx.train[d], protocol)[rows])
        parts.append(part)
    return ctx.trained_copy(protocol, group, parts), test_part, described


def run(ctx: CellContext) -> tuple[list[dict[str, Any]], list[str]]:
    rows, notes = [], []
    for protocol in PROTOCOLS:
        try:
            stages = []
            for group in ctx.networks:
                states, test_part, described = task_states(ctx, group, protocol)
                for stage, state in enumerate(states, start=1):
                    network = ctx.network_from(group, state)
                    modes = (True, False) if network.memory.adapts_at_test_time else (True,)
                    for d in group:
                        split = ctx.test[d]
                        labels = _labels(ctx, d, split, protocol)
                        for writes in modes:
                            suffix = "" if writes else "_without_writes"
                            for task in range(stage):
                                rows_of_task = np.flatnonzero(test_part[d] == task)
                                guess = predictions(network, split, rows_of_task, writes=writes)
                                stages.append((stage, f"task{task + 1}_accuracy{suffix}",
                                               float((guess == labels[rows_of_task]).mean())))
        except NotApplicable as reason:
            notes.append(str(reason))
            continue
        by_stage: dict[int, dict[str, list[float]]] = {}
        for stage, key, value in stages:
            by_stage.setdefault(stage, {}).setdefault(key, []).append(value)
        first = {}
        for stage, values in sorted(by_stage.items()):
            metrics: dict[str, Any] = {k: float(np.mean(v)) for k, v in values.items()}
            metrics["tasks"] = described
            for suffix in ("", "_without_writes"):
                tasks = [metrics[f"task{t + 1}_accuracy{suffix}"] for t in range(stage) if f"task{t + 1}_accuracy{suffix}" in metrics]
                if tasks:
                    metrics[f"average_accuracy{suffix}"] = float(np.mean(tasks))
                if stage == 1 and f"task1_accuracy{suffix}" in metrics:
                    first[suffix] = metrics[f"task1_accuracy{suffix}"]
                elif suffix in first:
                    metrics[f"forgetting{suffix}"] = first[suffix] - metrics[f"task1_accuracy{suffix}"]
            metrics["value"] = metrics["task1_accuracy"]
            rows.append({"curve": protocol, "level": float(stage), "metrics": metrics})
    if not rows:
        raise NotApplicable("; ".join(notes))
    return rows, notes
