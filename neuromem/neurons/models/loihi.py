"""The Loihi 2 fixed-point CUBA-LIF (`neuromem.neurons.functional.loihi`, bit-exact with Lava).

Outside the template (integer decays, a 24-bit wrap, a clip, the voltage reset to 0, a
threshold-scaled surrogate): registered with its own step (the reference loop, the oracle) and its
own fast path, `sequence` (`functional/loihi_kernels.py`: numba forward/backward kernels on CPU,
bit-exact with the reference; the reference loop elsewhere); no fused convolution. Its layers are
`neuromem.neurons.loihi`'s (`LoihiLinear`, `LoihiConv2d`: 8-bit weights and Lava's one-step
synaptic delay), not `SpikingLinear`'s (`spiking_layers=False`): the front ends enter them in
NEURON_LAYERS under "loihi" (`neuromem/models/frontends.py`).

NIR: the float shadow of the fixed-point neuron, a `nir.CubaLIF` (`nir_forms`' convention) with
alpha = (4095 - du)/4096 and beta = (4096 - dv)/4096 (Lava's decays), in units where the threshold is
vth (the synapse's integer weights times 2**weight_exp; u and the threshold are both scaled by 64 on
the chip), the bias as v_leak. Without its rounding and without Lava's one-step delay per layer (NIR has
no delay node): the caveat says so. The node carries the fixed-point parameters in its metadata, from
which `neuromem import` rebuilds the Loihi layer exactly (weights back to 8-bit mantissas).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from neuromem.errors import NeuromemError
from neuromem.neurons.functional.loihi import (
    DECAY_UNITY, LoihiParameters, LoihiState, initial_loihi_state, loihi_neuron_sequence, loihi_step,
)
from neuromem.neurons.models import MemoryTuning, NeuronModel, NIRNeuron, register_neuron
from neuromem.neurons.models.nir_forms import metadata_of, record_from_metadata, with_metadata

FLOAT_SHADOW = ("Loihi's fixed-point rounding and its one-step synaptic delay per layer are not in NIR: the graph "
                "is the chain's float shadow")


def _to_nir(p: LoihiParameters, shape: tuple[int, ...], dt: float):
    import nir

    if p.dv == 0:
        raise NeuromemError("NIR export needs dv >= 1 in every layer (dv = 0 is a perfect integrator, tau_mem = "
                            "infinity in NIR); train with dv >= 1")
    alpha = (DECAY_UNITY - 1 - p.du) / DECAY_UNITY
    beta = (DECAY_UNITY - p.dv) / DECAY_UNITY
    tau_syn, tau_mem = dt / (1.0 - alpha), dt / (1.0 - beta)
    ones = np.ones(shape)
    # the bias is added to v each step (Lava units: u is scaled by 64, v's bias is not)
    v_leak = p.effective_bias / 64.0 / (1.0 - beta)
    node = nir.CubaLIF(tau_syn=ones * tau_syn, tau_mem=ones * tau_mem, r=ones * tau_mem / dt, v_leak=ones * v_leak,
                       v_threshold=ones * float(p.vth), w_in=ones * tau_syn / dt, v_reset=np.zeros(shape))
    return with_metadata(node, neuron="loihi", parameters=dataclasses.asdict(p)), FLOAT_SHADOW


def _from_nir(node, dt: float, exact: bool) -> NIRNeuron | None:
    """Only a node neuromem wrote from a Loihi layer, read exactly: its weights come back as 8-bit mantissas
    (NIR weight = 2 m 2**weight_exp; the layer's float weight is m / 128)."""
    record = record_from_metadata(node, "loihi", LoihiParameters) if exact else None
    if record is None:
        return None
    recurrent_exp = int(metadata_of(node).get("layer", {}).get("recurrent_exp", record.weight_exp))
    return NIRNeuron(record, gain=2.0 ** -record.weight_exp / 256.0, recurrent_gain=2.0 ** -recurrent_exp / 256.0,
                     layer=(("recurrent_exp", recurrent_exp),))


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
        sequence=loihi_neuron_sequence,
        spiking_layers=False, doc="Loihi 2 fixed-point CUBA-LIF (numba kernels on CPU, else its reference loop)",
        memory_tuning=MEMORY_TUNING,
        to_nir=_to_nir, from_nir=_from_nir,
    )
)
