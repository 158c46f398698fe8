"""A memory network: per-modality front ends -> one memory module -> per-modality readouts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from neuromem.memory import MemoryModule, MemoryOutput, build_memory, memory_info
from neuromem.memory.base import OUTPUT_SPIKES
from neuromem.models.frontends import build_front_end, layer_kinds


@dataclass
class NetworkOutput:
    logits: dict[str, torch.Tensor]  # modality -> (batch, classes)
    memory: MemoryOutput
    spikes: dict[str, torch.Tensor]  # modality -> front-end output (T, batch, features)


class MemoryNetwork(nn.Module):
    def __init__(self, front_ends: Mapping[str, nn.Module], memory: MemoryModule, num_classes: Mapping[str, int],
                 spike_readout=None) -> None:
        """`spike_readout`: a layer factory (in, classes) reading the memory's output spike train
        (a spiking memory on a chip's neurons); None: nn.Linear on the memory's representation."""
        super().__init__()
        self.front_ends = nn.ModuleDict(front_ends)
        self.memory = memory
        self.reads_spikes = spike_readout is not None
        readout = spike_readout or nn.Linear
        self.readouts = nn.ModuleDict({m: readout(memory.output_size, n) for m, n in num_classes.items()})

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.front_ends)

    def encode(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Batch-major inputs (batch, T, ...) -> time-major front-end spike trains (T, batch, features)."""
        return {m: self.front_ends[m](x.transpose(0, 1)) for m, x in inputs.items()}

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> NetworkOutput:
        spikes = self.encode(inputs)
        memory_output = self.memory(spikes)
        sources = memory_output.extras[OUTPUT_SPIKES] if self.reads_spikes else memory_output.representations
        logits = {m: self.readouts[m](r) for m, r in sources.items()}
        return NetworkOutput(logits, memory_output, spikes)


def build_network(
    modalities: Mapping[str, tuple[int, ...]],
    num_classes: Mapping[str, int],
    memory: str,
    hidden: int = 256,
    neuron: str = "lif",
    neuron_params: Mapping[str, float] | None = None,
    memory_options: Mapping[str, object] | None = None,
    front_options: Mapping[str, object] | None = None,
) -> MemoryNetwork:
    """modalities: name -> input shape (without time); one shared memory over all of them. `front_options`:
    keyword arguments of the front ends (each front end says which it takes). `neuron_params`: fields of the
    neuron model's parameter record (e.g. reset="zero", a cell's `neuron_options`) given to every spiking layer,
    the front ends' and a spiking memory's alike (a front option of the same name wins in the front ends)."""
    neuron_params = dict(neuron_params or {})
    front_ends = {
        m: build_front_end(m, shape, hidden=hidden, neuron=neuron, **{**neuron_params, **dict(front_options or {})})
        for m, shape in modalities.items()
    }
    options = dict(memory_options or {})
    spiking = memory_info(memory).cls.spiking
    if spiking:  # a spiking memory's neurons are the network's
        options["neuron"] = neuron
        if neuron_params:
            options["neuron_params"] = tuple(sorted(neuron_params.items()))
    memory_module = build_memory(memory, {m: f.output_size for m, f in front_ends.items()}, **options)
    spike_readout = layer_kinds(neuron).spike_readout if spiking else None
    return MemoryNetwork(front_ends, memory_module, num_classes, spike_readout)
