"""Leaky integrate-and-fire (snnTorch's `Leaky`, reset from the previous step's spike):

    v_t = beta v_{t-1} + d_t - theta s_{t-1}        (reset="subtract")
    v_t = beta (1 - s_{t-1}) v_{t-1} + d_t           (reset="zero")
    s_t = H(v_t - theta)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

from neuromem.neurons.models import (
    MembraneDynamics, NeuronModel, check_reset_and_surrogate, check_unit_interval, register_neuron,
)
from neuromem.neurons.models.membrane import leaky_charge, leaky_leak

Reset = Literal["subtract", "zero"]


@dataclass(frozen=True)
class LIFParameters:
    beta: float = 0.9  # membrane decay per time step
    threshold: float = 1.0
    reset: Reset = "subtract"
    # SuperSpike's fast sigmoid at slope 5: on SHD-shaped data it trains far faster than
    # snnTorch's default atan(alpha=2), whose gradient is too flat below threshold
    surrogate: str = "fast_sigmoid"
    surrogate_slope: float = 5.0

    def __post_init__(self) -> None:
        check_unit_interval("beta", self.beta)
        check_reset_and_surrogate(self.reset, self.surrogate)


class LIFState(NamedTuple):
    membrane: torch.Tensor
    spikes: torch.Tensor


def _constants(p: LIFParameters) -> tuple[float, ...]:
    return float(p.beta), float(p.threshold)


def _charge(drive, v, s, aux, c, zero_reset):
    return leaky_charge(drive, v, s, c[0], c[1], zero_reset)


def _threshold(aux, c):
    return c[1]


def _leak(s, c, zero_reset):
    return leaky_leak(s, c[0], zero_reset)


LIF = register_neuron(
    NeuronModel(
        "lif", LIFParameters, LIFState, MembraneDynamics(_constants, _charge, _threshold, _leak), fused_conv=True,
        doc="leaky integrate-and-fire",
    )
)
