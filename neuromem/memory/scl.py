"""`scl`: supervised contrastive memory (Khosla et al. 2020) with a linear readout.

Each modality's spike train is pooled to firing rates in `time_bins` windows
(default 10: on the speech SHD stand-in 1 / 4 / 10 / 25 bins gave test 0.50 / 0.70 / 0.79 / 0.77 at
5 epochs, datasets/README.md; 1 is the plain rate code) and encoded by a small per-modality MLP into a shared
embedding of size `dim` — the representation the readout classifies. A shared
projection head maps embeddings to L2-normalized `projection_dim` vectors on
which the SupCon loss (temperature `temperature`) is computed; in a joint
batch all modalities' projections go into one loss with the concept labels,
so paired modalities are positives for each other.

`loss`:
  "ce"     the readout's cross-entropy alone trains the encoder (no SupCon),
  "supcon" SupCon alone trains the encoder; the representation handed to the
           readout is detached (the online linear-probe protocol),
  "both"   cross-entropy and `supcon_weight` * SupCon (default).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from neuromem.memory.base import MemoryModule, MemoryOutput, register_memory
from neuromem.memory.functional.pooling import binned_rates
from neuromem.memory.functional.scl import supcon_loss

LOSSES = ("ce", "supcon", "both")


def labels_for(labels: torch.Tensor | Mapping[str, torch.Tensor], modality: str) -> torch.Tensor:
    """One label tensor shared by all modalities (joint batches are paired), or one per modality."""
    return labels[modality] if isinstance(labels, Mapping) else labels


def check_supcon_options(name: str, temperature: float, loss: str, supcon_weight: float) -> None:
    """The SupCon options both forms share (scl, scl-spiking), refused in one line naming the module."""
    if not float(temperature) > 0:
        raise ValueError(f"{name} option temperature must be > 0, got {temperature}")
    if loss not in LOSSES:
        raise ValueError(f"{name} option loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if not float(supcon_weight) >= 0:
        raise ValueError(f"{name} option supcon_weight must be >= 0, got {supcon_weight}")


def stacked_supcon(projections: Mapping[str, torch.Tensor], labels, temperature: float) -> torch.Tensor:
    """SupCon over every modality's projections stacked into one batch (each with its own labels)."""
    stacked = torch.cat([projections[m] for m in projections])
    stacked_labels = torch.cat([labels_for(labels, m) for m in projections])
    return supcon_loss(stacked, stacked_labels, temperature)


@register_memory("scl", "supervised contrastive embedding with projection head; CE, SupCon or both (Khosla et al. 2020)",
                 loihi_reason="LayerNorm MLP encoder on pooled float rates (the spiking form is scl-spiking)")
class SupConMemory(MemoryModule):
    def __init__(
        self,
        input_sizes: Mapping[str, int],
        dim: int = 128,
        hidden: int = 256,
        projection_dim: int = 64,
        temperature: float = 0.1,
        loss: str = "both",
        supcon_weight: float = 1.0,
        time_bins: int = 10,
    ) -> None:
        super().__init__(
            input_sizes, dim=dim, hidden=hidden, projection_dim=projection_dim, temperature=temperature,
            loss=loss, supcon_weight=supcon_weight, time_bins=time_bins,
        )
        for option, value in (("dim", dim), ("hidden", hidden), ("projection_dim", projection_dim), ("time_bins", time_bins)):
            if int(value) < 1:
                raise ValueError(f"scl option {option} must be a positive integer, got {value}")
        check_supcon_options("scl", temperature, loss, supcon_weight)
        dim, hidden, projection_dim = int(dim), int(hidden), int(projection_dim)
        self.time_bins = int(time_bins)
        self.encoders = nn.ModuleDict(
            {
                m: nn.Sequential(
                    nn.Linear(size * self.time_bins, hidden), nn.LayerNorm(hidden), nn.ReLU(),
                    nn.Linear(hidden, dim), nn.LayerNorm(dim),
                )
                for m, size in input_sizes.items()
            }
        )
        self.projection_head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, projection_dim))
        self.temperature, self.loss, self.supcon_weight = float(temperature), loss, float(supcon_weight)
        self.output_size = dim

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> MemoryOutput:
        representations, projections = {}, {}
        for modality, spikes in inputs.items():
            embedding = self.encoders[modality](binned_rates(spikes, self.time_bins))
            projections[modality] = F.normalize(self.projection_head(embedding), dim=-1)
            representations[modality] = embedding.detach() if self.loss == "supcon" else embedding
        return MemoryOutput(representations, {"projections": projections})

    def auxiliary_loss(self, output: MemoryOutput, labels: torch.Tensor) -> torch.Tensor:
        projections = output.extras["projections"]
        if self.loss == "ce":
            return next(iter(projections.values())).new_zeros(())
        return self.supcon_weight * stacked_supcon(projections, labels, self.temperature)
