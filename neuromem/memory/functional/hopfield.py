"""Modern continuous Hopfield retrieval (Ramsauer et al. 2020, "Hopfield Networks is All You Need").

Stored patterns X (num_patterns, dim) as rows; a state xi is updated by

    xi <- softmax(beta * xi X^T) X          (the paper's xi <- X softmax(beta X^T xi))

which is one step of the concave-convex procedure on the energy

    E(xi) = -1/beta * logsumexp(beta * X xi) + 1/2 xi^T xi + const.

With large beta and separated patterns a stored pattern is a fixed point and a
noisy cue converges to its nearest pattern in one step.
"""

from __future__ import annotations

import torch


def hopfield_energy(state: torch.Tensor, patterns: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    """E(xi) per batch row, without the constant term."""
    scores = beta * state @ patterns.t()
    return -torch.logsumexp(scores, dim=-1) / beta + 0.5 * (state * state).sum(-1)


def hopfield_retrieve(
    state: torch.Tensor, patterns: torch.Tensor, beta: float | torch.Tensor, steps: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `steps` update steps from `state` (batch, dim); returns (retrieved state, last attention)."""
    attention = None
    for _ in range(max(1, steps)):
        attention = torch.softmax(beta * state @ patterns.t(), dim=-1)
        state = attention @ patterns
    return state, attention
