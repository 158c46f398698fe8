"""Capacity: how performance falls as more classes or more patterns are stored.

N-way (curve "n-way", level N = 2 .. number of classes): the cell's trained network, frozen, is the feature
space; for each N, `subsets` random sets of N classes (seeded by cell seed, suite and N; one set where N is
every class); a nearest-class-mean classifier (cosine, L2-normalised memory representations) whose class means
come from up to 50 training samples per class of the chosen classes; accuracy on every test sample of those
classes, mean over the sets (chance 1/N).

Stored patterns (curves "patterns noise=σ", level load P/d), for memories that declare an associative
recall (`MemoryModule.associative_recall`): P random patterns drawn uniformly on the sphere of the memory's
own trained pattern norm in its dimension d are stored; a cue is a stored pattern plus a random vector of
norm σ times the pattern's; the memory's own retrieval rule with its trained settings (beta, steps) runs once
from the cue; a retrieval is correct when the retrieved state is nearer (cosine) to the cued pattern than to
every other stored one and at most half as far from it as the cue was (the memory removed at least half the
noise: without that second condition the cue itself, already nearest to its pattern, would count as
retrieved). Up to 256 cues per load; `relative_error` = mean |retrieved - pattern| / |pattern|.

Theory (Ramsauer et al. 2020, "Hopfield Networks is All You Need", Theorem 3): for patterns drawn uniformly
on the sphere of radius M = K sqrt(d - 1) and failure probability p, with a = 2/(d-1) (1 + ln(2 beta K^2 p
(d-1))), b = 2 K^2 beta / 5 and c = b / W0(exp(a + ln b)) (W0: the upper branch of Lambert's W), provided
c >= (2 / sqrt(p))^(4/(d-1)), with probability 1 - p at least N = sqrt(p) c^((d-1)/4) random patterns are
stored (each a fixed point that the one-step update retrieves from near it). It is a lower bound on what is
stored, exponential in d, not a prediction of where retrieval fails. Drawn with p = 0.001 at the memory's
own beta and K = pattern norm / sqrt(d - 1); where the condition on c does not hold there, the theorem
guarantees nothing and the row says so (`theory_patterns` null). A winner-take-all memory (hopfield-spiking)
has no softmax temperature (beta inf, written null): the theorem does not apply and the row says so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from neuromem.study.suites.context import CellContext, prototype_accuracy

LOADS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # P / d
NOISES = (0.1, 0.3)  # cue noise, as a fraction of the pattern's norm
MAX_CUES = 256
FAILURE = 0.001  # p of the theorem


def theory_patterns(dim: int, beta: float, norm: float, p: float = FAILURE) -> float | None:
    """Ramsauer et al. 2020, Theorem 3: the number of random patterns on the sphere of radius `norm` in `dim`
    dimensions stored with probability 1 - p at inverse temperature beta; None where its condition fails."""
    from scipy.special import lambertw

    if dim < 2 or not math.isfinite(beta) or beta <= 0 or norm <= 0:
        return None
    k = norm / math.sqrt(dim - 1)
    inner = 2 * beta * k * k * p * (dim - 1)
    a = 2.0 / (dim - 1) * (1.0 + math.log(inner))
    b = 2 * k * k * beta / 5.0
    c = b / float(lambertw(math.exp(a + math.log(b)), 0).real)
    if c < (2 / math.sqrt(p)) ** (4.0 / (dim - 1)):
        return None
    return math.sqrt(p) * c ** ((dim - 1) / 4.0)


def n_way(ctx: CellContext) -> list[dict[str, Any]]:
    per_level: dict[int, dict[str, Any]] = {}
    for group in ctx.networks:
        for d in group:
            support_rows = ctx.support_rows(d)
            support = ctx.embeddings(group, d, "train", support_rows)
            support_labels = ctx.train[d].labels[support_rows]
            queries, query_labels = ctx.embeddings(group, d, "test"), ctx.test[d].labels
            classes = np.unique(support_labels)
            for n in range(2, len(classes) + 1):
                rng = ctx.rng("capacity", "n-way", n)
                draws = 1 if n == len(classes) else ctx.options.subsets
                scores = []
                for _ in range(draws):
                    chosen = np.sort(rng.choice(classes, n, replace=False))
                    s, q = np.isin(support_labels, chosen), np.isin(query_labels, chosen)
                    if q.any():
                        scores.append(prototype_accuracy(support[s], support_labels[s], queries[q], query_labels[q]))
                if scores:
                    metrics = per_level.setdefault(n, {"chance": 1.0 / n, "subsets": draws})
                    metrics[f"accuracy_{d}"] = float(np.mean(scores))
                    metrics[f"accuracy_std_{d}"] = float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0
    rows = []
    for n, metrics in sorted(per_level.items()):
        accuracies = [v for k, v in metrics.items() if k.startswith("accuracy_") and not k.startswith("accuracy_std")]
        metrics["value"] = metrics["accuracy"] = float(np.mean(accuracies))
        rows.append({"curve": "n-way", "level": float(n), "metrics": metrics})
    return rows


@torch.no_grad()
def stored_pattern_rows(recall, count: int, norm: float, noise: float, seed: int,
                        device: torch.device | str = "cpu") -> dict[str, Any]:
    """Store `count` random patterns of norm `norm`, cue up to MAX_CUES of them with noise, retrieve once (on
    `device`, the memory's; the draws are made on the CPU, the same on every device)."""
    dim = recall.dim
    generator = torch.Generator().manual_seed(seed)
    unit = torch.nn.functional.normalize
    patterns = unit(torch.randn(count, dim, generator=generator), dim=-1) * norm
    cued = torch.randperm(count, generator=generator)[:MAX_CUES]
    cues = patterns[cued] + noise * norm * unit(torch.randn(len(cued), dim, generator=generator), dim=-1)
    patterns, cued, cues = patterns.to(device), cued.to(device), cues.to(device)
    retrieved = recall.recall(cues, patterns)
    nearest = (unit(retrieved, dim=-1) @ unit(patterns, dim=-1).T).argmax(-1)
    distance = (retrieved - patterns[cued]).norm(dim=-1)
    correct = ((nearest == cued) & (distance <= 0.5 * noise * norm)).float().mean().item()
    return {"patterns": count, "cues": len(cued), "noise": noise, "value": correct, "retrieval": correct,
            "relative_error": (distance / norm).mean().item()}


def stored_patterns(ctx: CellContext) -> tuple[list[dict[str, Any]], str | None]:
    """(rows, why none) for the cell's memory."""
    network = next(iter(ctx.networks.values()))
    recall = network.memory.associative_recall()
    if recall is None:
        return [], f"memory {ctx.config.memory!r} declares no associative recall (stored patterns retrieved from a cue)"
    dim = recall.dim
    theory = theory_patterns(dim, recall.beta, recall.pattern_norm)
    finite = math.isfinite(recall.beta)
    why_none = ": its condition on c fails here (no guarantee)" if finite else ": no softmax temperature (a winner-take-all)"
    common = {"dim": dim, "beta": recall.beta if finite else None, "pattern_norm": recall.pattern_norm,
              "rule": recall.rule, "theory_patterns": theory, "theory_load": None if theory is None else theory / dim,
              "theory": "Ramsauer et al. 2020 Theorem 3, p = 0.001" + ("" if theory is not None else why_none)}
    rows = []
    for noise in NOISES:
        curve = f"patterns noise={noise:g}"
        for load in LOADS:
            metrics = stored_pattern_rows(recall, max(2, int(round(load * dim))), recall.pattern_norm, noise,
                                          ctx.seed("capacity", f"{curve}/{load!r}"), ctx.device)
            rows.append({"curve": curve, "level": float(load), "metrics": {**common, **metrics}})
    return rows, None


def run(ctx: CellContext) -> tuple[list[dict[str, Any]], list[str]]:
    rows, why = stored_patterns(ctx)
    return n_way(ctx) + rows, [why] if why else []
