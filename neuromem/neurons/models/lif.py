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
    MembraneDynamics, NeuronModel, NIRNeuron, check_reset_and_surrogate, check_unit_interval, register_neuron,
)
from neuromem.neurons.models.membrane import leaky_charge, leaky_leak
from neuromem.neurons.models.nir_forms import leaky_node, read_leaky, record_from_metadata

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


def _to_nir(p: LIFParameters, shape: tuple[int, ...], dt: float):
    return leaky_node(0.0, p.beta, p.threshold, shape, dt, p.reset, "lif", p)


def _from_nir(node, dt: float, exact: bool) -> NIRNeuron | None:
    """NIR's LIF and IF, and a CubaLIF whose current is its input (tau_syn = dt: alpha 0)."""
    if exact and (record := record_from_metadata(node, "lif", LIFParameters)) is not None:
        return NIRNeuron(record)
    found = read_leaky(node, dt)
    if found is None or found.alpha != 0.0:
        return None
    return NIRNeuron(LIFParameters(beta=found.beta, threshold=found.threshold, reset="zero"), gain=found.gain)


LIF = register_neuron(
    NeuronModel(
        "lif", LIFParameters, LIFState, MembraneDynamics(_constants, _charge, _threshold, _leak), fused_conv=True,
        doc="leaky integrate-and-fire", to_nir=_to_nir, from_nir=_from_nir,
    )
)
