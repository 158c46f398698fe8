"""Supervised contrastive learning (Khosla et al., NeurIPS 2020).

SupCon ("L_out" form) over L2-normalized projections z_i with labels y_i:

    L = mean_{i : P(i) != {}}  -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p / tau) / sum_{a != i} exp(z_i.z_a / tau) )

P(i) = the other samples with label y_i. Anchors without a positive in the
batch are left out of the mean. In a joint batch the projections of all
modalities are stacked with their concept labels, so a spoken "3" and a
visual "3" are positives for each other (cross-modal positives).
"""

from __future__ import annotations

import torch


def supcon_loss(projections: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """SupCon loss of L2-normalized projections (N, dim) with labels (N,); a scalar, 0 if no anchor has a positive."""
    n = projections.shape[0]
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    not_self = ~torch.eye(n, dtype=torch.bool, device=projections.device)
    logits = (projections @ projections.t() / temperature).masked_fill(~not_self, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & not_self
    counts = positives.sum(1)
    anchors = counts > 0
    if not anchors.any():
        return projections.sum() * 0.0  # keeps the graph: a valid, zero loss
    mean_log_prob_positive = log_prob.masked_fill(~positives, 0.0).sum(1)[anchors] / counts[anchors]
    return -mean_log_prob_positive.mean()
