"""Leaky integrate-and-fire neurons as pure functions (after Norse's functional core).

Parameters are small immutable records; `*_step` advances one time step;
`*_sequence` runs a whole (T, batch, ...) sequence in one call, which is the
one place where speed work on the time loop lives.

Dynamics (snnTorch's `Leaky` / `Synaptic`, reset computed from the previous step):

    LIF:   v_t = beta * v_{t-1} + x_t - theta * s_{t-1}              (reset="subtract")
           v_t = beta * (1 - s_{t-1}) * v_{t-1} + x_t                 (reset="zero")
    CUBA:  i_t = alpha * i_{t-1} + x_t ; v_t as LIF with x_t -> i_t
           s_t = H(v_t - theta)

The reset term uses a detached spike, as snnTorch does, so gradients flow only
through the membrane path and the surrogate of the spike non-linearity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

from neuromem.neurons.functional.surrogate import heaviside_surrogate

Reset = Literal["subtract", "zero"]


@dataclass(frozen=True)
class LIFParameters:
    beta: float = 0.9  # membrane decay per time step
    threshold: float = 1.0
    reset: Reset = "subtract"
    surrogate: str = "atan"
    surrogate_slope: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {self.beta}")
        if self.reset not in ("subtract", "zero"):
            raise ValueError(f"reset must be 'subtract' or 'zero', got {self.reset!r}")


@dataclass(frozen=True)
class CUBAParameters(LIFParameters):
    alpha: float = 0.8  # synaptic current decay per time step

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {self.alpha}")


class LIFState(NamedTuple):
    membrane: torch.Tensor
    spikes: torch.Tensor


class CUBAState(NamedTuple):
    current: torch.Tensor
    membrane: torch.Tensor
    spikes: torch.Tensor


def _integrate(membrane: torch.Tensor, drive: torch.Tensor, spikes_prev: torch.Tensor, p: LIFParameters) -> torch.Tensor:
    reset = spikes_prev.detach()
    if p.reset == "subtract":
        return p.beta * membrane + drive - reset * p.threshold
    return p.beta * (1.0 - reset) * membrane + drive


def lif_step(x: torch.Tensor, state: LIFState, p: LIFParameters) -> tuple[torch.Tensor, LIFState]:
    membrane = _integrate(state.membrane, x, state.spikes, p)
    spikes = heaviside_surrogate(membrane - p.threshold, p.surrogate, p.surrogate_slope)
    return spikes, LIFState(membrane, spikes)


def cuba_step(x: torch.Tensor, state: CUBAState, p: CUBAParameters) -> tuple[torch.Tensor, CUBAState]:
    current = p.alpha * state.current + x
    membrane = _integrate(state.membrane, current, state.spikes, p)
    spikes = heaviside_surrogate(membrane - p.threshold, p.surrogate, p.surrogate_slope)
    return spikes, CUBAState(current, membrane, spikes)


def initial_lif_state(like: torch.Tensor) -> LIFState:
    zeros = torch.zeros_like(like)
    return LIFState(zeros, zeros)


def initial_cuba_state(like: torch.Tensor) -> CUBAState:
    zeros = torch.zeros_like(like)
    return CUBAState(zeros, zeros, zeros)


def lif_sequence(
    inputs: torch.Tensor,
    p: LIFParameters,
    recurrent_weight: torch.Tensor | None = None,
    state: LIFState | None = None,
    return_membrane: bool = False,
) -> tuple[torch.Tensor, LIFState] | tuple[torch.Tensor, LIFState, torch.Tensor]:
    """Run LIF over a whole sequence.

    inputs: (T, batch, ...) input currents, already projected (the synaptic
    matmul is hoisted out of the time loop by the caller). If `recurrent_weight`
    (out, out) is given, s_{t-1} @ W^T is added to the drive at step t.
    Returns spikes (T, batch, ...) and the final state (and membranes if asked).
    """
    state = state if state is not None else initial_lif_state(inputs[0])
    spikes_out, membranes = [], []
    for x in inputs:
        if recurrent_weight is not None:
            x = x + state.spikes @ recurrent_weight.t()
        spikes, state = lif_step(x, state, p)
        spikes_out.append(spikes)
        if return_membrane:
            membranes.append(state.membrane)
    spikes_seq = torch.stack(spikes_out)
    if return_membrane:
        return spikes_seq, state, torch.stack(membranes)
    return spikes_seq, state


def cuba_sequence(
    inputs: torch.Tensor,
    p: CUBAParameters,
    recurrent_weight: torch.Tensor | None = None,
    state: CUBAState | None = None,
) -> tuple[torch.Tensor, CUBAState]:
    """Current-based LIF over a whole (T, batch, ...) sequence; see `lif_sequence`."""
    state = state if state is not None else initial_cuba_state(inputs[0])
    spikes_out = []
    for x in inputs:
        if recurrent_weight is not None:
            x = x + state.spikes @ recurrent_weight.t()
        spikes, state = cuba_step(x, state, p)
        spikes_out.append(spikes)
    return torch.stack(spikes_out), state


def leaky_integrator_sequence(inputs: torch.Tensor, beta: float) -> torch.Tensor:
    """Non-spiking leaky readout v_t = beta * v_{t-1} + x_t over (T, batch, ...); returns all v_t."""
    membrane = torch.zeros_like(inputs[0])
    out = []
    for x in inputs:
        membrane = beta * membrane + x
        out.append(membrane)
    return torch.stack(out)
