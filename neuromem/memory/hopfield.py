"""`hopfield`: a modern continuous Hopfield memory over learned stored patterns.

Each modality's spike train is pooled to firing rates in `time_bins`
consecutive windows (default 10: on the speech SHD stand-in, one
whole-sample rate underfits — see datasets/README.md) and projected to a
query; the query is updated by Hopfield retrieval against stored patterns
that are learned end to end (shared by all modalities, so a joint network has
one memory). The representation is the retrieved state, optionally with the
query added back (`residual`), which keeps gradients alive early in training.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from neuromem.memory.base import MemoryModule, MemoryOutput, register_memory
from neuromem.memory.functional.hopfield import hopfield_retrieve
from neuromem.memory.functional.pooling import binned_rates


@register_memory("hopfield", "modern continuous Hopfield retrieval over learned stored patterns (Ramsauer et al. 2020)",
                 loihi_reason="softmax retrieval and LayerNorm on pooled float rates (the spiking form is hopfield-spiking)")
class HopfieldMemory(MemoryModule):
    def __init__(
        self,
        input_sizes: Mapping[str, int],
        dim: int = 128,
        num_patterns: int = 64,
        beta: float = 4.0,
        steps: int = 1,
        residual: bool = True,
        learn_beta: bool = True,
        time_bins: int = 10,
    ) -> None:
        super().__init__(input_sizes, dim=dim, num_patterns=num_patterns, beta=beta, steps=steps, residual=residual,
                         time_bins=time_bins)
        if isinstance(time_bins, bool) or not isinstance(time_bins, int) or time_bins < 1:
            raise ValueError(f"hopfield option time_bins must be a positive integer, got {time_bins!r}")
        self.time_bins = time_bins
        self.queries = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(size * time_bins, dim), nn.LayerNorm(dim)) for m, size in input_sizes.items()}
        )
        self.patterns = nn.Parameter(torch.randn(num_patterns, dim) / math.sqrt(dim))
        log_beta = torch.tensor(math.log(beta))
        self.log_beta = nn.Parameter(log_beta) if learn_beta else nn.Buffer(log_beta)
        self.steps, self.residual = steps, residual
        self.output_size = dim

    @property
    def beta(self) -> torch.Tensor:
        return self.log_beta.exp()

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> MemoryOutput:
        representations, attention = {}, {}
        for modality, spikes in inputs.items():
            query = self.queries[modality](binned_rates(spikes, self.time_bins))
            retrieved, attention[modality] = hopfield_retrieve(query, self.patterns, self.beta, self.steps)
            representations[modality] = retrieved + query if self.residual else retrieved
        return MemoryOutput(representations, {"attention": attention})
