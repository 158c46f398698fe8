"""Few-shot: k-shot accuracy (k = 1, 5, 10) of a frozen trained network as the feature space, by nearest
prototype (the cosine-nearest class mean of L2-normalised memory representations).

Supports are drawn from up to 50 training samples per class (seeded; the ones the capacity suite's class means use).

- "held-out classes": the feature space is the class-incremental suite's copy of the cell's network after
  its first task only (same config and seed; trained on the first half of the classes or concepts, see
  `interference`), so the second half's classes were never trained on; each episode draws k training
  samples of every held-out class as the support (they were not in the copy's training data) and tests on
  every test sample of those classes (all-way).
- "trained classes": the cell's own network on all its classes, support and queries drawn alike: the same
  protocol on classes the network did train on, for reference.

Episodes seeded by (cell seed, suite, curve, k); each row: mean and sample std over the episodes."""

from __future__ import annotations

from typing import Any

import numpy as np

from neuromem.study.suites.context import CellContext, NotApplicable, prototype_accuracy
from neuromem.study.suites.interference import class_halves, task_states

SHOTS = (1, 5, 10)


def _episodes(ctx: CellContext, curve: str, k: int, train_embeddings: np.ndarray, train_labels: np.ndarray,
              queries: np.ndarray, query_labels: np.ndarray, classes: np.ndarray) -> list[float]:
    rng = ctx.rng("few-shot", curve, k)
    scores = []
    for _ in range(ctx.options.episodes):
        support = np.concatenate([rng.permutation(np.flatnonzero(train_labels == c))[:k] for c in classes])
        q = np.isin(query_labels, classes)
        scores.append(prototype_accuracy(train_embeddings[support], train_labels[support], queries[q], query_labels[q]))
    return scores


def run(ctx: CellContext) -> tuple[list[dict[str, Any]], list[str]]:
    rows, notes = [], []
    settings = {"held-out classes": "copy", "trained classes": "cell"}
    for curve, source in settings.items():
        per_k: dict[int, dict[str, Any]] = {}
        try:
            for group in ctx.networks:
                if source == "copy":
                    states, _, described = task_states(ctx, group, "class-incremental")
                    network, key = ctx.network_from(group, states[0]), "class-incremental task 1"
                else:
                    network, key, described = None, "cell", "every class the cell trained on"
                for d in group:
                    train, test = ctx.train[d], ctx.test[d]
                    support_rows = ctx.support_rows(d)  # up to 50 training samples per class to draw supports from
                    support_labels = train.labels[support_rows]
                    if source == "copy":
                        classes = np.unique(train.labels[class_halves(ctx, group)[0][d] == 1])
                    else:
                        classes = np.unique(train.labels)
                    counts = np.array([(support_labels == c).sum() for c in classes])
                    if len(classes) < 2:
                        raise NotApplicable(f"few-shot {curve}: fewer than two classes of {d}")
                    train_embeddings = ctx.embeddings(group, d, "train", support_rows, network=network, key=key)
                    test_embeddings = ctx.embeddings(group, d, "test", network=network, key=key)
                    for k in SHOTS:
                        if counts.min() < k:
                            notes.append(f"few-shot {curve}: {d} has a class with {counts.min()} training samples, "
                                         f"fewer than k = {k}")
                            continue
                        scores = _episodes(ctx, curve, k, train_embeddings, support_labels, test_embeddings,
                                           test.labels, classes)
                        metrics = per_k.setdefault(k, {"episodes": len(scores), "tasks": described})
                        metrics[f"accuracy_{d}"] = float(np.mean(scores))
                        metrics[f"accuracy_std_{d}"] = float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0
                        metrics[f"ways_{d}"] = int(len(classes))
                        metrics[f"chance_{d}"] = 1.0 / len(classes)
        except NotApplicable as reason:
            notes.append(str(reason))
            continue
        for k, metrics in sorted(per_k.items()):
            accuracies = [v for name, v in metrics.items() if name.startswith("accuracy_") and "_std_" not in name]
            metrics["value"] = metrics["accuracy"] = float(np.mean(accuracies))
            stds = [v for name, v in metrics.items() if name.startswith("accuracy_std_")]
            metrics["accuracy_std"] = float(np.mean(stds))
            rows.append({"curve": curve, "level": float(k), "metrics": metrics})
    if not rows:
        raise NotApplicable("; ".join(notes))
    return rows, notes
