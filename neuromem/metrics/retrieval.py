"""Retrieval metrics: rank a gallery by cosine similarity to each query; relevant = same label.

With several relevant items per query (every gallery item of the query's
class), the conventions are those of class-level cross-modal retrieval:

- recall@k: fraction of queries with at least one relevant item in the top k
  (the hit rate; the usual "Recall@K" of image-text retrieval);
- MRR: mean over queries of 1 / rank of the first relevant item (0 if none);
- NDCG@k: binary-relevance DCG of the top k, sum_i rel_i / log2(i + 2) over
  ranks i = 0..k-1, divided by the ideal DCG (all relevant items first).

Ties in similarity keep gallery order (stable sort), so results are
deterministic.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def _tensor(values, dtype=None) -> torch.Tensor:
    tensor = values.detach() if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
    return tensor.to(dtype=dtype) if dtype is not None else tensor


def relevance_ranking(query, gallery, query_labels, gallery_labels) -> torch.Tensor:
    """(N, M) bool: relevance of the gallery item at each rank, per query (best-ranked first)."""
    query, gallery = _tensor(query, torch.float64), _tensor(gallery, torch.float64)
    if query.ndim != 2 or gallery.ndim != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(f"query (N, D) and gallery (M, D) must share D; got {tuple(query.shape)}, {tuple(gallery.shape)}")
    query_labels, gallery_labels = _tensor(query_labels).reshape(-1), _tensor(gallery_labels).reshape(-1)
    if len(query_labels) != len(query) or len(gallery_labels) != len(gallery):
        raise ValueError("one label per query row and per gallery row is needed")
    similarity = F.normalize(query, dim=1) @ F.normalize(gallery, dim=1).t()
    order = torch.sort(-similarity, dim=1, stable=True).indices
    return gallery_labels[order] == query_labels.unsqueeze(1)


def retrieval_metrics(
    query, gallery, query_labels, gallery_labels, ks: Sequence[int] = (1, 5, 10), ndcg_k: int = 10
) -> dict[str, float]:
    """{"recall@k" for k in ks, "mrr", "ndcg@<ndcg_k>"} as Python floats."""
    relevant = relevance_ranking(query, gallery, query_labels, gallery_labels)
    num_queries, gallery_size = relevant.shape
    metrics: dict[str, float] = {}
    for k in ks:
        metrics[f"recall@{k}"] = relevant[:, : min(k, gallery_size)].any(1).double().mean().item()
    has_relevant = relevant.any(1)
    first_rank = relevant.double().argmax(1) + 1  # 1-based rank of the first relevant item
    metrics["mrr"] = torch.where(has_relevant, 1.0 / first_rank, torch.zeros_like(first_rank)).mean().item()
    depth = min(ndcg_k, gallery_size)
    discounts = 1.0 / torch.log2(torch.arange(depth, dtype=torch.float64) + 2.0)
    dcg = (relevant[:, :depth].double() * discounts).sum(1)
    ideal_hits = relevant.sum(1).clamp(max=depth)
    ideal = torch.cumsum(discounts, 0)[(ideal_hits - 1).clamp(min=0)] * (ideal_hits > 0)
    ndcg = torch.where(ideal > 0, dcg / ideal.clamp_min(1e-12), torch.zeros_like(dcg))
    metrics[f"ndcg@{ndcg_k}"] = ndcg.mean().item()
    return metrics


def chance_recall_at_1(query_labels, gallery_labels) -> float:
    """Expected recall@1 of a random ranking: mean fraction of the gallery relevant to each query."""
    query_labels, gallery_labels = _tensor(query_labels).reshape(-1), _tensor(gallery_labels).reshape(-1)
    relevant = (query_labels.unsqueeze(1) == gallery_labels.unsqueeze(0)).double()
    return relevant.mean(1).mean().item() if len(query_labels) else math.nan


def item_retrieval_metrics(query, gallery, ks: Sequence[int] = (1, 5, 10), ndcg_k: int = 10) -> dict[str, float]:
    """Item level: query i's only relevant gallery item is gallery i (paired rows, e.g. one visual and one spoken
    sample of an episode); the same metrics as `retrieval_metrics` with item ids as labels (chance recall@1 = 1/N)."""
    query, gallery = _tensor(query), _tensor(gallery)
    if len(query) != len(gallery):
        raise ValueError(f"item retrieval pairs row i of query with row i of gallery; got {len(query)} and {len(gallery)} rows")
    items = torch.arange(len(query))
    return retrieval_metrics(query, gallery, items, items, ks, ndcg_k)
