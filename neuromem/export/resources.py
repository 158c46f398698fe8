"""Loihi 2 resources and energy per inference for an exported network.

Per-core limits (Intel, "Taking Neuromorphic Computing to the Next Level with
Loihi 2", technology brief, 2021, Table 1): 128 neuro cores per chip, up to
1 million neurons and 120 million synapses per chip, 192 KiB of memory per
core; 1M / 128 cores = 8,192 neurons per core. A layer is mapped onto cores of
its own (as Lava's compilers map populations); it needs enough cores for its
neurons and for its dense 8-bit weight matrix (fan-in weights of its neurons,
one byte each) in the 192 KiB per core - an upper bound on memory that ignores
neuron state and the compiler's compression, so a lower bound on cores.

Energy per inference: synaptic operations (each input spike times its fan-out,
counted from the actual rasters, recurrent included), neuron updates (every
neuron, every step; active ones at the higher figure) and spikes routed, priced
with the published per-operation figures of `neuromem.accounting.energy.LOIHI`
(Davies et al., IEEE Micro 2018 - measured on Loihi 1; Intel has not published
per-operation figures for Loihi 2 in that form, so these are the cited estimate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from neuromem.accounting.energy import LOIHI, EnergyProfile

LOIHI2_BRIEF = "Intel, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', technology brief, 2021, Table 1"
CORES_PER_CHIP = 128
NEURONS_PER_CORE = 8192  # 128 x 8,192 = 1,048,576, the "up to 1 million neurons" per chip
MEMORY_PER_CORE_BYTES = 192 * 1024
SYNAPSES_PER_CHIP = 120_000_000


@dataclass
class LayerResources:
    neurons: int
    synapses: int  # feed-forward + recurrent weights
    cores: int


@dataclass
class LoihiResources:
    layers: list[LayerResources]
    samples: int
    timesteps: int
    synaptic_ops_per_inference: float
    neuron_updates_per_inference: float
    spikes_per_inference: float
    active_updates_per_inference: float
    energy_uj_per_inference: float
    energy_terms_uj: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def neurons(self) -> int:
        return sum(l.neurons for l in self.layers)

    @property
    def synapses(self) -> int:
        return sum(l.synapses for l in self.layers)

    @property
    def cores(self) -> int:
        return sum(l.cores for l in self.layers)

    @property
    def chips(self) -> int:
        return max(1, math.ceil(self.cores / CORES_PER_CHIP))

    def as_dict(self) -> dict:
        return {
            "neurons": self.neurons,
            "synapses": self.synapses,
            "cores": self.cores,
            "chips": self.chips,
            "layers": [vars(l) for l in self.layers],
            "samples": self.samples,
            "timesteps": self.timesteps,
            "synaptic_ops_per_inference": self.synaptic_ops_per_inference,
            "neuron_updates_per_inference": self.neuron_updates_per_inference,
            "spikes_per_inference": self.spikes_per_inference,
            "energy_uj_per_inference": self.energy_uj_per_inference,
            "energy_terms_uj": self.energy_terms_uj,
            "sources": self.sources,
        }

    def lines(self) -> list[str]:
        out = [
            f"Loihi 2 resources: {self.neurons} neurons, {self.synapses} synapses, {self.cores} cores "
            f"({self.chips} chip{'s' if self.chips > 1 else ''})",
        ]
        for i, l in enumerate(self.layers):
            out.append(f"  layer {i}: {l.neurons} neurons, {l.synapses} synapses, {l.cores} core(s)")
        out.append(
            f"per inference ({self.timesteps} steps, mean of {self.samples} samples): "
            f"{self.synaptic_ops_per_inference:.0f} synaptic ops, {self.neuron_updates_per_inference:.0f} neuron updates, "
            f"{self.spikes_per_inference:.0f} spikes -> {self.energy_uj_per_inference:.3f} uJ "
            "at Loihi 1's measured per-operation energies (Loihi 2's are not published)"
        )
        for key, value in self.energy_terms_uj.items():
            out.append(f"  {key}: {value:.3f} uJ")
        out.append("sources:")
        out += [f"  {key}: {value}" for key, value in self.sources.items()]
        return out


def layer_cores(neurons: int, synapses: int) -> int:
    return max(1, math.ceil(neurons / NEURONS_PER_CORE), math.ceil(synapses / MEMORY_PER_CORE_BYTES))


def loihi_resources(
    layer_shapes: list[tuple],
    input_spikes: np.ndarray,
    layer_spikes: list[np.ndarray],
    profile: EnergyProfile = LOIHI,
) -> LoihiResources:
    """layer_shapes: (in, out, recurrent) per dense layer, or (in, out, recurrent, synapses, fan-out) for a sparse
    one (a convolution: fan-out = synapses / in, each input spike reaches that many neurons on average);
    input_spikes (S, T, ...); layer_spikes per layer (S, T, ...)."""
    samples, steps = input_spikes.shape[:2]
    layers, synops, updates, spikes, active = [], 0.0, 0.0, 0.0, 0.0
    def per_sample(raster) -> float:
        raster = np.asarray(raster)
        return float((raster > 0).reshape(raster.shape[0], -1).sum(axis=1).mean())

    presynaptic = per_sample(input_spikes)
    for shape, raster in zip(layer_shapes, layer_spikes):
        fan_in, size, recurrent = shape[:3]
        forward, fanout = (shape[3], shape[4]) if len(shape) > 3 else (fan_in * size, size)
        synapses = forward + (size * size if recurrent else 0)
        layers.append(LayerResources(size, synapses, layer_cores(size, synapses)))
        emitted = per_sample(raster)
        synops += presynaptic * fanout + (emitted * size if recurrent else 0.0)
        updates += size * steps
        spikes += emitted
        active += emitted
        presynaptic = emitted
    terms_pj = {
        "synaptic ops": synops * profile.ac_pj,
        "neuron updates (inactive)": (updates - active) * profile.neuron_update_pj,
        "neuron updates (spiking)": active * profile.active_neuron_update_pj,
        "spike routing": spikes * profile.spike_pj,
    }
    sources = {
        "per-core limits": f"{LOIHI2_BRIEF}: {CORES_PER_CHIP} cores/chip, {NEURONS_PER_CORE} neurons/core "
        f"(1M neurons/chip), {MEMORY_PER_CORE_BYTES // 1024} KiB memory/core, {SYNAPSES_PER_CHIP // 1_000_000}M synapses/chip",
        "synaptic ops": profile.sources.get("ac_pj", ""),
        "neuron updates (inactive)": profile.sources.get("neuron_update_pj", ""),
        "neuron updates (spiking)": profile.sources.get("active_neuron_update_pj", ""),
        "spike routing": profile.sources.get("spike_pj", ""),
    }
    return LoihiResources(
        layers=layers,
        samples=int(samples),
        timesteps=int(steps),
        synaptic_ops_per_inference=float(synops),
        neuron_updates_per_inference=float(updates),
        spikes_per_inference=float(spikes),
        active_updates_per_inference=float(active),
        energy_uj_per_inference=float(sum(terms_pj.values()) * 1e-6),
        energy_terms_uj={k: float(v * 1e-6) for k, v in terms_pj.items()},
        sources=sources,
    )
