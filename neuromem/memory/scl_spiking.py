"""`scl-spiking`: the supervised contrastive memory with spiking projection layers, mappable to Loihi.

Each modality's front-end spikes drive two layers of the network's neurons
(lif, cuba or loihi): `hidden` then `dim` neurons (`dim` defaults to the neuron model's
`memory_tuning.width`: 256 on "loihi", 128 otherwise), whose firing rate (batch,
dim) is the representation and whose spike train the readout reads. The
SupCon objective (Khosla et al. 2020) is computed during training only, on a
float projection head over those rates; it shapes the spiking layers and is
not part of the deployed network (in eval the head is not run).

`loss` as in `scl`: "ce", "supcon" (readout input detached) or "both".

Firing-rate band (training only, added to the auxiliary loss; `rate_band_loss`): neurons of both layers firing
below `rate_floor` (or above `rate_ceiling`) spikes per step are pulled back by a penalty of weight
`rate_weight`; the exported cell does not change. On neuron "loihi" rate_floor defaults to 0.01 (no ceiling):
without it 6% of the hidden and 26% of the output neurons of the trained SHD cell never fired. SHD embedded,
loihi, seed 0, 5 epochs, dim 128, SupCon weight 1: train 0.908 -> 0.933, test 0.800 -> 0.795 (2-epoch screen:
test 0.375 -> 0.465). With dim 256 (Loihi's default width) and the Loihi readout's smaller logit scale since
(neurons/loihi.LOGIT_SCALE 1/2**18) the default cell reaches train 0.970 / test 0.875; SupCon weight 0.3 then
measured train 0.976 / test 0.883: not kept.
Other neuron models: no band by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from neuromem.memory.base import OUTPUT_SPIKES, MemoryModule, MemoryOutput, register_memory
from neuromem.memory.scl import SupConOptions, stacked_supcon
from neuromem.memory.spiking_layers import (
    SpikingOptions,
    layer_kinds,
    rate_band_active,
    rate_band_penalty,
    set_surrogate_slope,
)


@dataclass(frozen=True)
class SpikingSupConOptions(SupConOptions, SpikingOptions):
    """The spiking memories' options and the SupCon ones."""


@register_memory("scl-spiking", "supervised contrastive memory of spiking layers; the SupCon projection head is "
                 "training-only", SpikingSupConOptions, loihi_exportable=True)
class SpikingSupConMemory(MemoryModule):
    spiking = True

    def build(self, o: SpikingSupConOptions) -> None:
        kinds = layer_kinds(o.neuron, o.neuron_params)
        self.encoders = nn.ModuleDict({m: nn.Sequential(kinds.linear(size, o.hidden), kinds.linear(o.hidden, o.width))
                                       for m, size in self.input_sizes.items()})
        for encoder in self.encoders.values():
            set_surrogate_slope(encoder, o.slope)
        self.projection_head = o.projection_head(o.width)
        self.temperature, self.loss, self.supcon_weight = float(o.temperature), o.loss, float(o.supcon_weight)
        self.rate_band = o.rate_band
        self.output_size = o.width

    def chip_layers(self, modality: str) -> list[nn.Module]:
        return list(self.encoders[modality])

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> MemoryOutput:
        representations, spikes, projections, layer_spikes = {}, {}, {}, {}
        for modality, x in inputs.items():
            hidden = self.encoders[modality][0](x)
            out = self.encoders[modality][1](hidden)
            if self.training and rate_band_active(*self.rate_band):
                layer_spikes[modality] = [hidden, out]
            rates = out.mean(0)
            if self.training and self.loss != "ce":
                projections[modality] = F.normalize(self.projection_head(rates.float()), dim=-1)
            detach = self.loss == "supcon"
            spikes[modality] = out.detach() if detach else out
            representations[modality] = rates.detach() if detach else rates
        return MemoryOutput(representations, {OUTPUT_SPIKES: spikes, "projections": projections,
                                              "layer_spikes": layer_spikes})

    def auxiliary_loss(self, output: MemoryOutput, labels: torch.Tensor) -> torch.Tensor:
        projections = output.extras["projections"]
        loss = next(iter(output.representations.values())).new_zeros(())
        if projections:
            loss = loss + self.supcon_weight * stacked_supcon(projections, labels, self.temperature)
        return rate_band_penalty(output.extras["layer_spikes"], self.rate_band, loss)
