"""Cross-Modal Harmonic Associative Network: energy, its gradient, settling.

Every modality m has a state h_m (batch, d) in one shared space and its own
stored patterns X_m (K, d). The network's energy is

    E = sum_m E_within(h_m; X_m) + lambda * sum_{m != n} E_between(h_m, h_n; W_mn)

    E_within(h; X)          = -tau * logsumexp(X h / tau) + 1/2 h.h + tau log K + 1/2 max_k |x_k|^2
    E_between(h_m, h_n; W)  = -sigmoid(h_m^T W h_n)

E_within is the modern-Hopfield energy (Ramsauer et al. 2020) at inverse
temperature 1/tau; its two constant terms do not move the states but make
E_within >= 0, so minimizing the energy as a loss cannot run off by growing
the patterns. E_between rewards pairs of states that the learned bilinear
map W_mn calls associated; both orders (m, n) and (n, m) have their own W.

Retrieval is gradient descent h <- h - eta * dE/dh on all states at once, for
`steps` steps or until no state moves by more than `tolerance`. The gradient
is analytic (checked against autograd in the tests) and built from ordinary
tensor ops, so training backpropagates through the unrolled settling:

    dE/dh_m = h_m - softmax(X_m h_m / tau) X_m
              - lambda * sum_{n != m} [ s'(h_m^T W_mn h_n) W_mn h_n + s'(h_n^T W_nm h_m) W_nm^T h_n ]

with s' = sigmoid * (1 - sigmoid). For eta <= 1 and lambda = 0 one step with
eta = 1 is exactly the Hopfield update h <- softmax(X h / tau) X.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, NamedTuple

import torch

Pair = tuple[str, str]
UPDATE_RULES = ("gradient", "cccp")


@dataclass(frozen=True)
class SettleParameters:
    coupling: float = 1.0  # lambda, weight of the between-modality energy
    temperature: float = 0.1  # tau of the within-modality log-sum-exp
    step_size: float = 0.5  # eta
    steps: int = 5  # most gradient steps
    tolerance: float = 1e-4  # stop once no state coordinate moves by more than this
    within: bool = True  # include the within-modality (Hopfield) energy; False: ablation "between only"
    between: bool = True  # include the between-modality energy; False: ablation "within only"
    update: str = "gradient"  # "gradient": h -= eta dE/dh; "cccp": the concave-convex step, see `settle`

    def __post_init__(self) -> None:
        if self.update not in UPDATE_RULES:
            raise ValueError(f"cmhan option update must be one of {', '.join(UPDATE_RULES)}, got {self.update!r}")
        if not (self.within or self.between):
            raise ValueError("cmhan options: at least one energy term (within, between) must stay on")
        checks = (
            ("coupling", self.coupling >= 0, ">= 0"),
            ("temperature", self.temperature > 0, "> 0"),
            ("step_size", 0 < self.step_size <= 1, "in (0, 1]"),
            ("steps", self.steps >= 0, ">= 0"),
            ("tolerance", self.tolerance >= 0, ">= 0"),
        )
        for name, ok, valid in checks:
            if not ok:
                raise ValueError(f"cmhan option {name} must be {valid}, got {getattr(self, name)}")


def within_energy(state: torch.Tensor, patterns: torch.Tensor, temperature: float) -> torch.Tensor:
    """Modern-Hopfield energy of each state row (batch,), shifted to be >= 0."""
    scores = state @ patterns.t() / temperature
    constant = temperature * math.log(patterns.shape[0]) + 0.5 * (patterns * patterns).sum(-1).max()
    return -temperature * torch.logsumexp(scores, dim=-1) + 0.5 * (state * state).sum(-1) + constant


def within_gradient(state: torch.Tensor, patterns: torch.Tensor, temperature: float) -> torch.Tensor:
    return state - torch.softmax(state @ patterns.t() / temperature, dim=-1) @ patterns


def between_energy(state_m: torch.Tensor, state_n: torch.Tensor, association: torch.Tensor) -> torch.Tensor:
    """-sigmoid(h_m^T W h_n) per batch row."""
    return -torch.sigmoid(((state_m @ association) * state_n).sum(-1))


def between_gradients(
    state_m: torch.Tensor, state_n: torch.Tensor, association: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(dE_between/dh_m, dE_between/dh_n) for E_between(h_m, h_n; W)."""
    mapped_m = state_m @ association  # W^T h_m as a row: (batch, d)
    sig = torch.sigmoid((mapped_m * state_n).sum(-1, keepdim=True))
    slope = sig * (1.0 - sig)
    return -slope * (state_n @ association.t()), -slope * mapped_m


def total_energy(
    states: Mapping[str, torch.Tensor],
    patterns: Mapping[str, torch.Tensor],
    associations: Mapping[Pair, torch.Tensor],
    p: SettleParameters,
) -> torch.Tensor:
    """E per batch row (batch,), with the terms `p` keeps."""
    like = next(iter(states.values()))
    energy = like.new_zeros(len(like))
    if p.within:
        energy = energy + sum(within_energy(states[m], patterns[m], p.temperature) for m in states)
    if p.between:
        for (m, n), association in associations.items():
            energy = energy + p.coupling * between_energy(states[m], states[n], association)
    return energy


def energy_gradients(
    states: Mapping[str, torch.Tensor],
    patterns: Mapping[str, torch.Tensor],
    associations: Mapping[Pair, torch.Tensor],
    p: SettleParameters,
) -> dict[str, torch.Tensor]:
    """Analytic dE/dh_m for every modality (of the terms `p` keeps)."""
    if p.within:
        gradients = {m: within_gradient(states[m], patterns[m], p.temperature) for m in states}
    else:
        gradients = {m: torch.zeros_like(h) for m, h in states.items()}
    if p.between and p.coupling > 0:
        for (m, n), association in associations.items():
            grad_m, grad_n = between_gradients(states[m], states[n], association)
            gradients[m] = gradients[m] + p.coupling * grad_m
            gradients[n] = gradients[n] + p.coupling * grad_n
    return gradients


class Settled(NamedTuple):
    states: dict[str, torch.Tensor]
    steps: int  # gradient steps actually taken
    energies: list[torch.Tensor] | None  # (batch,) energy before each step and after the last, if recorded


def settle(
    states: Mapping[str, torch.Tensor],
    patterns: Mapping[str, torch.Tensor],
    associations: Mapping[Pair, torch.Tensor],
    p: SettleParameters,
    record_energy: bool = False,
) -> Settled:
    """Descent on E from `states`; differentiable w.r.t. states, patterns and associations.

    update "gradient": h <- h - eta * dE/dh. update "cccp": the concave-convex procedure's step,
    which minimizes 1/2 |h|^2 (the convex part) against the linearized rest of E at h_t:
    h <- softmax(X h / tau) X - lambda * dE_between/dh (the one-step Hopfield update plus the
    coupling's pull). With the within term on this is the gradient step with eta = 1, whatever
    `step_size` says; with it off the 1/2 |h|^2 term is not in E, so "cccp" takes h <- h - dE/dh."""
    states = dict(states)
    energies = [total_energy(states, patterns, associations, p)] if record_energy else None
    taken = 0
    eta = 1.0 if p.update == "cccp" else p.step_size
    for _ in range(p.steps):
        gradients = energy_gradients(states, patterns, associations, p)
        moves = {m: eta * g for m, g in gradients.items()}
        states = {m: states[m] - moves[m] for m in states}
        taken += 1
        if record_energy:
            energies.append(total_energy(states, patterns, associations, p))
        if max(float(move.detach().abs().max()) for move in moves.values()) < p.tolerance:
            break
    return Settled(states, taken, energies)


def paired_info_nce(
    anchors: torch.Tensor, targets: torch.Tensor, temperature: float, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE between row-paired views (batch, d), cosine similarity / temperature.

    Row i of `anchors` and row i of `targets` are the positive pair. With
    `labels`, other rows of the same concept are dropped from the denominators
    (they are not negatives; a batch of 64 holds ~6 of each digit)."""
    a = torch.nn.functional.normalize(anchors, dim=-1)
    b = torch.nn.functional.normalize(targets, dim=-1)
    logits = a @ b.t() / temperature
    if labels is not None:
        same_concept = labels[:, None] == labels[None, :]
        same_concept.fill_diagonal_(False)
        logits = logits.masked_fill(same_concept, float("-inf"))
    index = torch.arange(len(a), device=a.device)
    ce = torch.nn.functional.cross_entropy
    return 0.5 * (ce(logits, index) + ce(logits.t(), index))
