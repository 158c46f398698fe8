"""`none`: no memory. The readout reads the front end's spike train as it is (its firing rate, or on neuron
"loihi" the spike train itself): the passthrough of the cells `neuromem import` builds from NIR graphs, whose
every layer is in the front end ("layers", `neuromem.models.frontends.LayerListFrontEnd`). Unlisted
(`register_memory(listed=False)`): it is no memory to study, has nothing to learn, and so is not among
`memory_names()` (grids, `neuromem memories`, the memory contract tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from neuromem.memory.base import OUTPUT_SPIKES, MemoryModule, MemoryOptions, MemoryOutput, register_memory


@dataclass(frozen=True)
class NoMemoryOptions(MemoryOptions):
    neuron: str = "lif"  # the network's neuron model (`build_network` sets it); nothing here depends on it
    neuron_params: tuple = ()  # its parameter record's fields given to every layer (`build_network` sets them)


@register_memory("none", "no memory: the readout reads the front end's spikes (the passthrough of imported NIR "
                 "graphs)", NoMemoryOptions, loihi_exportable=True, listed=False)
class NoMemory(MemoryModule):
    spiking = True

    def __init__(self, input_sizes: Mapping[str, int], **options) -> None:
        super().__init__(input_sizes, **options)
        sizes = set(self.input_sizes.values())
        if len(sizes) != 1:
            raise ValueError(f"memory none passes every front end's spikes to one readout width; its front ends "
                             f"give {dict(self.input_sizes)}")
        self.output_size = sizes.pop()

    def chip_layers(self, modality: str) -> list[nn.Module]:
        return []

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> MemoryOutput:
        return MemoryOutput({m: x.mean(0) for m, x in inputs.items()}, {OUTPUT_SPIKES: dict(inputs)})
