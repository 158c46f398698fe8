"""LIF and CUBA by their familiar names (after Norse's functional core).

The models themselves are defined once each in `neuromem.neurons.models` (`lif.py`,
`cuba.py`: parameters, state, update); every execution path is generated from them in
`neuron.py`. This module keeps the per-model entry points: `lif_step` / `cuba_step`
(the reference steps), `lif_sequence` / `cuba_sequence` (the fast path, or the
reference loop under `reference_core()`), and the leaky readout (`leaky.py`).
"""

from __future__ import annotations

import torch

from neuromem.neurons.functional.leaky import leaky_integrator_sequence, leaky_integrator_sequence_reference
from neuromem.neurons.functional.neuron import fast_path_enabled, neuron_sequence, reference_core, reference_sequence
from neuromem.neurons.models.cuba import CUBA, CUBAParameters, CUBAState
from neuromem.neurons.models.lif import LIF, LIFParameters, LIFState, Reset

__all__ = [
    "LIFParameters", "LIFState", "CUBAParameters", "CUBAState", "Reset", "lif_step", "cuba_step",
    "initial_lif_state", "initial_cuba_state", "lif_sequence", "cuba_sequence", "lif_sequence_reference",
    "cuba_sequence_reference", "leaky_integrator_sequence", "leaky_integrator_sequence_reference",
    "reference_core", "fast_path_enabled",
]

lif_step = LIF.step
cuba_step = CUBA.step
initial_lif_state = LIF.initial_state
initial_cuba_state = CUBA.initial_state


def lif_sequence(
    inputs: torch.Tensor,
    p: LIFParameters,
    recurrent_weight: torch.Tensor | None = None,
    state: LIFState | None = None,
    return_membrane: bool = False,
):
    """LIF over a whole (T, batch, ...) sequence: see `neuron.neuron_sequence`."""
    return neuron_sequence(LIF, inputs, p, recurrent_weight, state, return_membrane)


def cuba_sequence(
    inputs: torch.Tensor,
    p: CUBAParameters,
    recurrent_weight: torch.Tensor | None = None,
    state: CUBAState | None = None,
) -> tuple[torch.Tensor, CUBAState]:
    """Current-based LIF over a whole (T, batch, ...) sequence; see `lif_sequence`."""
    return neuron_sequence(CUBA, inputs, p, recurrent_weight, state)


def lif_sequence_reference(inputs, p: LIFParameters, recurrent_weight=None, state=None, return_membrane=False):
    return reference_sequence(LIF, inputs, p, recurrent_weight, state, return_membrane)


def cuba_sequence_reference(inputs, p: CUBAParameters, recurrent_weight=None, state=None):
    return reference_sequence(CUBA, inputs, p, recurrent_weight, state)
