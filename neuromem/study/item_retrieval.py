"""Item-level cross-modal retrieval of finished two-sense cells (`neuromem retrieval RUN`).

Class-level retrieval (the trainer's `retrieval_*` metrics) counts any gallery item of the cue's digit as a
hit. Item level asks for THE partner: the training split's fixed, seeded one-to-one pairs of one visual and
one spoken sample of the same digit (`neuromem.train.pairing.item_pairs`, the pairs a `--pairing item` cell
trained on), each pair an item; a cue of one sense ranks the other sense's members of all pairs, and only its
own partner is relevant (Recall@K, MRR, NDCG@10 with item ids as labels: chance Recall@1 = 1 / pairs).

- one network of both senses (joint): the memory's own `retrieve` (cue -> the target sense's space), ranked
  against the target's representations, as the trainer ranks at class level;
- separate networks (parallel): aligned post hoc on the same training pairs, by each method of `ALIGNMENTS`
  (orthogonal Procrustes; regularised CCA), then ranked in the common space.

Class-level metrics on the test split sit beside them (for separate networks through the same alignment).
Results go into the store's `evaluations` table as evaluation "item-retrieval" (level 0).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from neuromem.errors import NeuromemError
from neuromem.metrics.retrieval import item_retrieval_metrics, retrieval_metrics

EVALUATION = "item-retrieval"
Mapping2 = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def procrustes(x: np.ndarray, y: np.ndarray) -> Mapping2:
    """Orthogonal Procrustes on paired rows: centre (and scale to unit Frobenius norm) each side, the rotation R
    minimising ||x R - y|| (Schoenemann 1966); x maps by R, y stays. Needs equal widths."""
    if x.shape[1] != y.shape[1]:
        raise NeuromemError(f"procrustes needs equal widths ({x.shape[1]} vs {y.shape[1]})")
    mx, my = x.mean(0), y.mean(0)
    sx, sy = max(np.linalg.norm(x - mx), 1e-12), max(np.linalg.norm(y - my), 1e-12)
    u, _, vt = np.linalg.svd(((x - mx) / sx).T @ ((y - my) / sy))
    rotation = u @ vt
    return (lambda a: ((a - mx) / sx) @ rotation), (lambda b: (b - my) / sy)


def _inverse_sqrt(c: np.ndarray, ridge: float) -> np.ndarray:
    c = c + ridge * (np.trace(c) / len(c) + 1e-12) * np.eye(len(c))
    values, vectors = np.linalg.eigh(c)
    return vectors @ np.diag(1.0 / np.sqrt(np.maximum(values, 1e-12))) @ vectors.T


def cca(x: np.ndarray, y: np.ndarray, components: int = 32, ridge: float = 0.1) -> Mapping2:
    """Regularised CCA (ridge `ridge` x the mean variance on each covariance): both sides projected on their
    first `components` canonical directions (whitened, so every canonical variate counts alike)."""
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    n = max(len(x) - 1, 1)
    wx, wy = _inverse_sqrt(xc.T @ xc / n, ridge), _inverse_sqrt(yc.T @ yc / n, ridge)
    u, _, vt = np.linalg.svd(wx @ (xc.T @ yc / n) @ wy)
    k = min(components, u.shape[1], vt.shape[0])
    a, b = wx @ u[:, :k], wy @ vt.T[:, :k]
    return (lambda p: (p - mx) @ a), (lambda q: (q - my) @ b)


ALIGNMENTS: dict[str, Callable[[np.ndarray, np.ndarray], Mapping2]] = {"procrustes": procrustes, "cca": cca}


def _subset(split, rows: np.ndarray, labels: np.ndarray):
    return replace(split, inputs=split.inputs[rows], labels=labels, original_labels=split.original_labels[rows])


def item_retrieval(config, checkpoint: Path, data_root: Path) -> dict[str, Any]:
    """Item-level (training pairs) and class-level (test split) retrieval of one finished two-sense cell."""
    from neuromem.export.model import trained_network
    from neuromem.study.store import read_checkpoint_file
    from neuromem.train import trainer
    from neuromem.train.pairing import item_pairs
    from neuromem.train.tasks import TASKS

    task = TASKS.get(config.modality)
    if task is None or len(task.datasets) != 2:
        raise NeuromemError(f"item-level retrieval needs a cell of two senses (joint, parallel), not {config.modality}")
    torch.set_num_threads(config.threads)
    saved = read_checkpoint_file(checkpoint)
    train, test = trainer._load(task, config, data_root, "train"), trainer._load(task, config, data_root, "test")
    a, b = task.datasets
    rows_a, rows_b = item_pairs(train[a].labels, train[b].labels, config.seed)
    items = np.arange(len(rows_a))
    pairs = {a: _subset(train[a], rows_a, items), b: _subset(train[b], rows_b, items)}
    metrics: dict[str, Any] = {"pairs": int(len(items)), "chance_item_recall@1": 1.0 / max(len(items), 1),
                               "pairing": config.pairing or "class", "accuracy": None}
    networks = {tuple(g): trained_network(config, saved["state_dict"]["+".join(g)], g, str(checkpoint))
                for g in trainer._groups(task)}
    if len(networks) == 1:  # one network of both senses: the memory's own cross-modal recall
        network = next(iter(networks.values()))
        stored = {d: trainer._evaluate(network, pairs[d])["representations"] for d in (a, b)}
        clean = {d: trainer._evaluate(network, test[d]) for d in (a, b)}
        for cue, target in itertools.permutations((a, b)):
            for level, cues, gallery, labels in (("item", pairs[cue], stored[target], items),
                                                 ("class", test[cue], clean[target]["representations"], test[target].labels)):
                scores = trainer._cross_modal_retrieval(network, cues, target, gallery, labels)
                metrics.update({f"{level}_{cue}_to_{target}_{k.rsplit('_', 1)[1]}": v for k, v in scores.items()})
        accuracy = {d: float((clean[d]["predictions"] == test[d].labels).mean()) for d in (a, b)}
    else:  # separate networks: aligned post hoc on the training pairs
        own = {d: next(n for g, n in networks.items() if d in g) for d in (a, b)}
        stored = {d: trainer._evaluate(own[d], pairs[d])["representations"].astype(np.float64) for d in (a, b)}
        clean = {d: trainer._evaluate(own[d], test[d]) for d in (a, b)}
        accuracy = {d: float((clean[d]["predictions"] == test[d].labels).mean()) for d in (a, b)}
        for method, fit in ALIGNMENTS.items():
            try:
                map_a, map_b = fit(stored[a], stored[b])
            except NeuromemError as error:
                metrics[f"{method}_skipped"] = str(error)
                continue
            mapped_item = {a: map_a(stored[a]), b: map_b(stored[b])}
            mapped_test = {a: map_a(clean[a]["representations"].astype(np.float64)),
                           b: map_b(clean[b]["representations"].astype(np.float64))}
            for cue, target in itertools.permutations((a, b)):
                item = item_retrieval_metrics(mapped_item[cue], mapped_item[target])
                cls = retrieval_metrics(mapped_test[cue], mapped_test[target], test[cue].labels, test[target].labels)
                metrics.update({f"item_{method}_{cue}_to_{target}_{k}": v for k, v in item.items()})
                metrics.update({f"class_{method}_{cue}_to_{target}_{k}": v for k, v in cls.items()})
    metrics.update({f"accuracy_{d}": v for d, v in accuracy.items()})
    metrics["accuracy"] = float(np.mean(list(accuracy.values())))
    return metrics


def evaluate_items(store, data_root: Path, on_cell: Callable[[str, dict | None, str | None], None] = lambda *a: None,
                   allow_stale: bool = False) -> int:
    """Item retrieval of every finished two-sense cell of the store, into its `evaluations` table; how many."""
    from neuromem.study.evaluate import _connect
    from neuromem.train.config import CellConfig
    from neuromem.train.provenance import current_provenance, stale_reason
    from neuromem.train.tasks import TASKS

    count = 0
    for row in store.rows():
        config = CellConfig.from_dict(row["config"])
        task = TASKS.get(config.modality)
        if row["status"] != "ok" or task is None or len(task.datasets) != 2:
            continue
        checkpoint = store.cell_dir(row["cell_id"]) / "model.pt"
        stale = stale_reason(row["metrics"].get("provenance"), current_provenance(config.memory))
        if not checkpoint.is_file() or (stale and not allow_stale):
            on_cell(row["cell_id"], None, "no model.pt" if not checkpoint.is_file() else f"stale ({stale})")
            continue
        metrics = item_retrieval(config, checkpoint, data_root)
        db = _connect(store)
        try:
            with db:
                db.execute("INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?)",
                           (row["cell_id"], EVALUATION, 0.0, json.dumps(metrics)))
        finally:
            db.close()
        count += 1
        on_cell(row["cell_id"], metrics, None)
    return count
