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
from neuromem.neurons.models import MemoryTuning, NeuronModel, register_neuron

# What a spiking memory takes on Loihi neurons for an option left unset (SHD embedded data, seed 0, 5 epochs;
# more in the memories' docstrings):
# - width 256: 128 underfits SHD (hopfield-spiking with rate floor 0.01: train 0.849 / test 0.762 at dim 128,
#   0.936 / 0.853 at 256 with relay 256, 268 s against 222 s a cell; scl-spiking: 0.933 / 0.795 at 128,
#   0.934 / 0.833 at 256, 233 s against 190 s);
# - init gain 0.3 (hopfield-spiking): the Loihi readout integrates the retrieved spikes over every step (its
#   voltage, not a rate, is the logit), so the retrieved layer must start sparse (~2% per step on SHD) or the
#   first logits are huge (loss ~10-20, the readout's gradient then dominates the clipped update);
# - surrogate slope 1: a Loihi neuron's long current and voltage time constants make each layer's backward gain
#   large: at the model's slope 4 the front end's gradient norm is ~15,000 behind hopfield-spiking (~60 behind the
#   float hopfield) and the memory's layers learn slowly; at slope 1 it is ~1,600 and a 640-sample screen learns
#   about twice as fast;
# - firing-rate floor 0.01, no ceiling: without it up to 39% of a memory layer's neurons stopped firing for good.
MEMORY_TUNING = MemoryTuning(width=256, init_gain=0.3, surrogate_slope=1.0, rate_band=(0.01, 1.0))


LOIHI = register_neuron(
    NeuronModel(
        "loihi", LoihiParameters, LoihiState, None, step=loihi_step, initial_state=initial_loihi_state,
        spiking_layers=False, doc="Loihi 2 fixed-point CUBA-LIF (reference loop on every device)",
        memory_tuning=MEMORY_TUNING,
    )
)
