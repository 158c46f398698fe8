"""Test-time-training (TTT) memory: slot reads and the two write rules, as pure functions.

A TTT memory is a set of slots (num_slots, dim). A query reads it by
attention,

    w = softmax(beta * q S^T / sqrt(dim)),      read = w S,

and, at inference, the memory *learns from the stream* by writing into the
slots. Two write rules:

- attention (gated) write, per sample b and slot s:

      S_s <- S_s (1 - g_bs w_bs) + u_bs g_bs w_bs

  with u (the value to store) and g (a gate in [0, rate]) produced by small
  networks over [slot, input summary]. A batch writes as one sample whose
  attention on a slot is the batch's total attention, capped at 1 (exactly
  the rule above for a batch of one; see `gated_write`).

- gradient write: a few plain gradient steps on the slots against a
  self-supervised loss — reconstructing the input summary from the read-out —
  the "inner loop" of test-time training (Sun et al. 2020; 2024).

Every function returns new tensors and never mutates its arguments; the module
that owns the slots decides when a write is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

WRITE_MODES = ("attention", "gradient")


@dataclass(frozen=True)
class TTTParameters:
    beta: float = 1.0  # read sharpness; scores are beta * q.S / sqrt(dim)
    write_rate: float = 0.1  # upper bound of the gate g in the attention write
    grad_steps: int = 1  # inner-loop steps of the gradient write
    grad_lr: float = 0.1  # inner-loop step size of the gradient write


def read_weights(queries: torch.Tensor, slots: torch.Tensor, beta: float) -> torch.Tensor:
    """Attention of each query (B, D) over the slots (S, D): (B, S), rows sum to one."""
    scale = beta / math.sqrt(slots.shape[-1])
    return torch.softmax(scale * queries @ slots.transpose(-1, -2), dim=-1)


def read_slots(queries: torch.Tensor, slots: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(read (B, D), weights (B, S))."""
    weights = read_weights(queries, slots, beta)
    return weights @ slots, weights


def gated_write(
    slots: torch.Tensor, weights: torch.Tensor, values: torch.Tensor, gates: torch.Tensor
) -> torch.Tensor:
    """S_s <- S_s + sum_b g w (u - S_s) / max(1, sum_b w_bs): S_s (1 - g w) + u g w for one sample.

    slots (S, D), weights (B, S), values u (B, S, D), gates g (B, S) in [0, 1].
    A batch writes like one sample whose attention is the batch's total
    attention on the slot, capped at 1: a slot moves toward the attention-
    weighted mean of its values by at most the gate (a convex step, so
    repeated writes never overshoot), however large the batch.
    """
    step = (gates * weights).unsqueeze(-1)  # (B, S, 1)
    mass = weights.sum(0).clamp_min(1.0).unsqueeze(-1)  # (S, 1)
    return slots + (step * (values - slots.unsqueeze(0))).sum(0) / mass


def reconstruction_loss(
    slots: torch.Tensor, queries: torch.Tensor, beta: float, decode: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """The self-supervised TTT loss: squared error of the query's reconstruction from the read-out,
    summed over features and averaged over the batch (so the step size does not depend on the batch)."""
    read, _ = read_slots(queries, slots, beta)
    return (decode(read) - queries).pow(2).sum(-1).mean()


def gradient_write(
    slots: torch.Tensor,
    queries: torch.Tensor,
    parameters: TTTParameters,
    decode: Callable[[torch.Tensor], torch.Tensor],
    differentiable: bool = False,
) -> torch.Tensor:
    """`grad_steps` gradient steps of size `grad_lr` on the slots against `reconstruction_loss`.

    With `differentiable` the steps stay in the autograd graph (second-order), so
    an outer loss can train the decoder and the slots' initial values through
    them; otherwise the result is detached.
    """
    for _ in range(parameters.grad_steps):
        with torch.enable_grad():
            current = slots if differentiable else slots.detach().requires_grad_(True)
            targets = queries if differentiable else queries.detach()
            loss = reconstruction_loss(current, targets, parameters.beta, decode)
            (grad,) = torch.autograd.grad(loss, current, create_graph=differentiable)
        slots = current - parameters.grad_lr * grad
        if not differentiable:
            slots = slots.detach()
    return slots
