"""Adaptive-threshold LIF (Bellec et al. 2018, LSNN; Yin et al. 2021, SRNN): each spike raises
the neuron's threshold, which relaxes back with time constant rho,

    a_t = rho a_{t-1} + (1 - rho) s_{t-1}               adaptation
    b_t = b0 + beta_a a_t                               threshold (b0 = `threshold`)
    v_t = beta v_{t-1} + d_t - b_t s_{t-1}               (reset="subtract": by the threshold in effect)
    v_t = beta (1 - s_{t-1}) v_{t-1} + d_t               (reset="zero")
    s_t = H(v_t - b_t)

As for the reset, the adaptation sees the detached spike: gradients flow through the
membrane and the surrogate only, not through the threshold (the full LSNN gradient
through a_t is not computed). beta_a = 0 is plain LIF.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from neuromem.errors import NeuromemError
from neuromem.neurons.models import (
    MembraneDynamics, NeuronModel, NIRNeuron, check_reset_and_surrogate, check_unit_interval, register_neuron,
)
from neuromem.neurons.models.nir_forms import leaky_node, record_from_metadata
from neuromem.neurons.models.lif import Reset
from neuromem.neurons.models.membrane import leaky_charge, leaky_leak


@dataclass(frozen=True)
class ALIFParameters:
    beta: float = 0.9  # membrane decay per time step
    threshold: float = 1.0  # b0, the threshold at rest
    reset: Reset = "subtract"
    surrogate: str = "fast_sigmoid"
    surrogate_slope: float = 5.0
    rho: float = 0.95  # adaptation decay per time step
    beta_a: float = 1.8  # threshold increase per unit of adaptation (Bellec et al.: 1.8)

    def __post_init__(self) -> None:
        check_unit_interval("beta", self.beta)
        check_unit_interval("rho", self.rho)
        if self.beta_a < 0:
            raise ValueError(f"beta_a must be >= 0, got {self.beta_a}")
        check_reset_and_surrogate(self.reset, self.surrogate)


class ALIFState(NamedTuple):
    adaptation: torch.Tensor
    membrane: torch.Tensor
    spikes: torch.Tensor


def _constants(p: ALIFParameters) -> tuple[float, ...]:
    return float(p.beta), float(p.threshold), float(p.beta_a), float(p.rho), 1.0 - float(p.rho)


def _adapt(a, drive, s, c):
    return c[3] * a + c[4] * s


def _threshold(a, c):
    return c[1] + c[2] * a


def _charge(drive, v, s, a, c, zero_reset):
    # b_t written out: the model's functions do not call each other (numba compiles each alone)
    return leaky_charge(drive, v, s, c[0], c[1] + c[2] * a, zero_reset)


def _leak(s, c, zero_reset):
    return leaky_leak(s, c[0], zero_reset)


def _to_nir(p: ALIFParameters, shape: tuple[int, ...], dt: float):
    """Without adaptation (beta_a = 0) ALIF is lif; NIR has no neuron whose threshold moves."""
    if p.beta_a != 0.0:
        raise NeuromemError(
            f"NIR export refused: neuron 'alif' has an adaptive threshold (b0 + beta_a a_t, beta_a = {p.beta_a}) and "
            "NIR 1.0's neurons (LIF, CubaLIF, IF) have a fixed one; train with --neuron lif or cuba to export to NIR")
    return leaky_node(0.0, p.beta, p.threshold, shape, dt, p.reset, "alif", p)


def _from_nir(node, dt: float, exact: bool) -> NIRNeuron | None:
    """Only a node neuromem wrote from an alif layer (read exactly); NIR says no adaptation otherwise."""
    record = record_from_metadata(node, "alif", ALIFParameters) if exact else None
    return None if record is None else NIRNeuron(record)


ALIF = register_neuron(
    NeuronModel(
        "alif", ALIFParameters, ALIFState,
        MembraneDynamics(_constants, _charge, _threshold, _leak, aux_update=_adapt, adaptive=True),
        aux_field="adaptation", doc="adaptive-threshold LIF", to_nir=_to_nir, from_nir=_from_nir,
    )
)
