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

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from neuromem.memory.base import (
    MemoryModule,
    MemoryOptions,
    MemoryOutput,
    PooledOptions,
    check_choice,
    check_positive_int,
    register_memory,
)
from neuromem.memory.functional.pooling import binned_rates
from neuromem.memory.functional.scl import supcon_loss

LOSSES = ("ce", "supcon", "both")


def labels_for(labels: torch.Tensor | Mapping[str, torch.Tensor], modality: str) -> torch.Tensor:
    """One label tensor shared by all modalities (joint batches are paired), or one per modality."""
    return labels[modality] if isinstance(labels, Mapping) else labels


@dataclass(frozen=True)
class SupConOptions(MemoryOptions):
    """The SupCon options both forms share (scl, scl-spiking): the encoder's hidden width, the training-only
    projection head's width, the loss's temperature, which loss trains the encoder, and SupCon's weight."""

    hidden: int = 256
    projection_dim: int = 64
    temperature: float = 0.1
    loss: str = "both"
    supcon_weight: float = 1.0

    def check(self, memory: str) -> None:
        super().check(memory)
        check_positive_int(memory, hidden=self.hidden, projection_dim=self.projection_dim)
        if not float(self.temperature) > 0:
            raise ValueError(f"{memory} option temperature must be > 0, got {self.temperature}")
        check_choice(memory, "loss", self.loss, LOSSES)
        if not float(self.supcon_weight) >= 0:
            raise ValueError(f"{memory} option supcon_weight must be >= 0, got {self.supcon_weight}")

    def projection_head(self, dim: int) -> nn.Module:
        """The training-only head from the `dim`-wide representation to the `projection_dim` SupCon space."""
        return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, self.projection_dim))


@dataclass(frozen=True)
class SupConMemoryOptions(SupConOptions, PooledOptions):
    dim: int = 128

    def check(self, memory: str) -> None:
        super().check(memory)
        check_positive_int(memory, dim=self.dim)


def stacked_supcon(projections: Mapping[str, torch.Tensor], labels, temperature: float) -> torch.Tensor:
    """SupCon over every modality's projections stacked into one batch (each with its own labels)."""
    stacked = torch.cat([projections[m] for m in projections])
    stacked_labels = torch.cat([labels_for(labels, m) for m in projections])
    return supcon_loss(stacked, stacked_labels, temperature)


@register_memory("scl", "supervised contrastive embedding with projection head; CE, SupCon or both (Khosla et al. 2020)",
                 SupConMemoryOptions,
                 loihi_reason="LayerNorm MLP encoder on pooled float rates (the spiking form is scl-spiking)")
class SupConMemory(MemoryModule):
    def build(self, o: SupConMemoryOptions) -> None:
        self.time_bins = o.time_bins
        self.encoders = nn.ModuleDict(
            {
                m: nn.Sequential(
                    nn.Linear(size * self.time_bins, o.hidden), nn.LayerNorm(o.hidden), nn.ReLU(),
                    nn.Linear(o.hidden, o.dim), nn.LayerNorm(o.dim),
                )
                for m, size in self.input_sizes.items()
            }
        )
        self.projection_head = o.projection_head(o.dim)
        self.temperature, self.loss, self.supcon_weight = float(o.temperature), o.loss, float(o.supcon_weight)
        self.output_size = o.dim

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
