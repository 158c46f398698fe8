"""Evaluation metrics as pure functions over embeddings and labels."""

from neuromem.metrics.retrieval import chance_recall_at_1, retrieval_metrics

__all__ = ["chance_recall_at_1", "retrieval_metrics"]
