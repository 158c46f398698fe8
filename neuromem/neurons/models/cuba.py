"""Current-based LIF (snnTorch's `Synaptic`): the drive is filtered by a synaptic current,

    i_t = alpha i_{t-1} + d_t
    v_t = beta v_{t-1} + i_t - theta s_{t-1}        (or the zero reset of `lif`)
    s_t = H(v_t - theta)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from neuromem.neurons.models import (
    MembraneDynamics, NeuronModel, NIRNeuron, check_reset_and_surrogate, check_unit_interval, register_neuron,
)
from neuromem.neurons.models.nir_forms import leaky_node, read_leaky, record_from_metadata
from neuromem.neurons.models.lif import Reset
from neuromem.neurons.models.membrane import leaky_charge, leaky_leak


@dataclass(frozen=True)
class CUBAParameters:
    beta: float = 0.9
    threshold: float = 1.0
    reset: Reset = "subtract"
    surrogate: str = "fast_sigmoid"
    surrogate_slope: float = 5.0
    alpha: float = 0.8  # synaptic current decay per time step

    def __post_init__(self) -> None:
        check_unit_interval("beta", self.beta)
        check_unit_interval("alpha", self.alpha)
        check_reset_and_surrogate(self.reset, self.surrogate)


class CUBAState(NamedTuple):
    current: torch.Tensor
    membrane: torch.Tensor
    spikes: torch.Tensor


def _constants(p: CUBAParameters) -> tuple[float, ...]:
    return float(p.alpha), float(p.beta), float(p.threshold)


def _current(current, drive, s, c):
    return c[0] * current + drive


def _charge(drive, v, s, current, c, zero_reset):
    return leaky_charge(current, v, s, c[1], c[2], zero_reset)


def _threshold(current, c):
    return c[2]


def _leak(s, c, zero_reset):
    return leaky_leak(s, c[1], zero_reset)


def _current_decay(c):
    return c[0]


def _to_nir(p: CUBAParameters, shape: tuple[int, ...], dt: float):
    return leaky_node(p.alpha, p.beta, p.threshold, shape, dt, p.reset, "cuba", p)


def _from_nir(node, dt: float, exact: bool) -> NIRNeuron | None:
    """NIR's CubaLIF (one with alpha 0 reads as lif first: the same neuron)."""
    import nir

    if exact and (record := record_from_metadata(node, "cuba", CUBAParameters)) is not None:
        return NIRNeuron(record)
    found = read_leaky(node, dt) if isinstance(node, nir.CubaLIF) else None
    if found is None:
        return None
    return NIRNeuron(CUBAParameters(beta=found.beta, threshold=found.threshold, reset="zero", alpha=found.alpha),
                     gain=found.gain)


CUBA = register_neuron(
    NeuronModel(
        "cuba", CUBAParameters, CUBAState,
        MembraneDynamics(_constants, _charge, _threshold, _leak, aux_update=_current, drive_decay=_current_decay),
        aux_field="current", doc="current-based LIF (synaptic current filter)", to_nir=_to_nir, from_nir=_from_nir,
    )
)
