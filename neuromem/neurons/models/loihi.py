"""The Loihi 2 fixed-point CUBA-LIF (`neuromem.neurons.functional.loihi`, bit-exact with Lava).

Outside the template (integer decays, a 24-bit wrap, a clip, the voltage reset to 0, a
threshold-scaled surrogate): registered with its own step, it runs the reference loop on
every device; there is no numba kernel for it, and no fused convolution. Its layers are
`neuromem.neurons.loihi`'s (`LoihiLinear`, `LoihiConv2d`: 8-bit weights and Lava's one-step
synaptic delay), not `SpikingLinear`'s (`spiking_layers=False`): the front ends enter them in
NEURON_LAYERS under "loihi" (`neuromem/models/frontends.py`).
"""

from __future__ import annotations

from neuromem.neurons.functional.loihi import LoihiParameters, LoihiState, initial_loihi_state, loihi_step
from neuromem.neurons.models import NeuronModel, register_neuron

LOIHI = register_neuron(
    NeuronModel(
        "loihi", LoihiParameters, LoihiState, None, step=loihi_step, initial_state=initial_loihi_state,
        spiking_layers=False, doc="Loihi 2 fixed-point CUBA-LIF (reference loop on every device)",
    )
)
