"""Training objectives of the tri-modal network, as pure functions of embeddings.

- `info_nce`: contrastive alignment (van den Oord et al. 2018; CLIP's symmetric
  form). With `labels`, every same-label pair counts as a positive (items of
  the same digit are not pushed apart), as in supervised contrastive learning.
- `reconstruction_loss`: 1 - cosine between a decoded embedding and the
  encoder's embedding (detached: decoders chase the encoders, not the reverse,
  so nothing collapses to a constant).
- cross-modal prediction is `info_nce(decode_b(latent_a), embedding_b)`: the
  prediction of modality b from modality a must pick b's own embedding out of
  the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor | None = None, temperature: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE between row-paired embeddings a, b (B, D); labels (B,) make same-label pairs positive."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.t() / temperature
    if labels is None:
        positives = torch.eye(len(a), device=a.device)
    else:
        positives = (labels.unsqueeze(1) == labels.unsqueeze(0)).float()
    positives = positives / positives.sum(1, keepdim=True)
    # same-label masks are symmetric, so the row-normalised mask serves both directions
    a_to_b = -(positives * F.log_softmax(logits, dim=1)).sum(1).mean()
    b_to_a = -(positives * F.log_softmax(logits.t(), dim=1)).sum(1).mean()
    return (a_to_b + b_to_a) / 2


def reconstruction_loss(decoded: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (1 - F.cosine_similarity(decoded, target.detach(), dim=-1)).mean()
