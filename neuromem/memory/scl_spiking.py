"""`scl-spiking`: the supervised contrastive memory with spiking projection layers, mappable to Loihi.

Each modality's front-end spikes drive two layers of the network's neurons
(lif, cuba or loihi): `hidden` then `dim` neurons (`dim` defaults to 256 on neuron
"loihi", 128 otherwise: DEFAULT_DIM), whose firing rate (batch,
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
test 0.375 -> 0.465). With dim 256 (DEFAULT_DIM) and the Loihi readout's smaller logit scale since
(neurons/loihi.LOGIT_SCALE 1/2**18) the default cell reaches train 0.970 / test 0.875; SupCon weight 0.3 then
measured train 0.976 / test 0.883: not kept.
Other neuron models: no band by default.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from neuromem.memory.base import OUTPUT_SPIKES, MemoryModule, MemoryOutput, register_memory
from neuromem.memory.scl import check_supcon_options, stacked_supcon
from neuromem.memory.spiking_layers import (
    layer_kinds,
    rate_band_active,
    rate_band_for,
    rate_band_penalty,
    set_surrogate_slope,
    surrogate_slope_for,
)

# Default output width per neuron model. SHD embedded, loihi, seed 0, 5 epochs, rate_floor 0.01: dim 128
# train 0.933 / test 0.795, dim 256 train 0.934 / test 0.833 (233 s a cell against 190 s). Other models: 128.
DEFAULT_DIM = {"loihi": 256}


@register_memory(
    "scl-spiking",
    "supervised contrastive memory of spiking layers; the SupCon projection head is training-only",
    loihi_exportable=True,
)
class SpikingSupConMemory(MemoryModule):
    spiking = True

    def __init__(
        self,
        input_sizes: Mapping[str, int],
        dim: int | None = None,
        hidden: int = 256,
        projection_dim: int = 64,
        temperature: float = 0.1,
        loss: str = "both",
        supcon_weight: float = 1.0,
        surrogate_slope: float | None = None,
        rate_floor: float | None = None,
        rate_ceiling: float | None = None,
        rate_weight: float = 1.0,
        neuron: str = "lif",
    ) -> None:
        super().__init__(
            input_sizes, dim=dim, hidden=hidden, projection_dim=projection_dim, temperature=temperature,
            loss=loss, supcon_weight=supcon_weight, surrogate_slope=surrogate_slope,
            rate_floor=rate_floor, rate_ceiling=rate_ceiling, rate_weight=rate_weight, neuron=neuron,
        )
        if dim is None:
            dim = DEFAULT_DIM.get(neuron, 128)
        for option, value in (("dim", dim), ("hidden", hidden), ("projection_dim", projection_dim)):
            if int(value) != value or int(value) < 1:
                raise ValueError(f"scl-spiking option {option} must be a positive integer, got {value}")
        check_supcon_options("scl-spiking", temperature, loss, supcon_weight)
        surrogate_slope = surrogate_slope_for("scl-spiking", surrogate_slope, neuron)
        self.rate_band = rate_band_for("scl-spiking", rate_floor, rate_ceiling, rate_weight, neuron)
        kinds = layer_kinds(neuron)
        dim, hidden, projection_dim = int(dim), int(hidden), int(projection_dim)
        self.encoders = nn.ModuleDict(
            {m: nn.Sequential(kinds.linear(size, hidden), kinds.linear(hidden, dim)) for m, size in input_sizes.items()}
        )
        for encoder in self.encoders.values():
            set_surrogate_slope(encoder, surrogate_slope)
        self.projection_head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, projection_dim))
        self.temperature, self.loss, self.supcon_weight = float(temperature), loss, float(supcon_weight)
        self.output_size = dim

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
