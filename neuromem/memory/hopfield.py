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
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from neuromem.memory.base import AssociativeRecall, MemoryModule, MemoryOutput, PooledOptions, register_memory
from neuromem.memory.functional.hopfield import hopfield_retrieve
from neuromem.memory.functional.pooling import binned_rates


@dataclass(frozen=True)
class HopfieldOptions(PooledOptions):
    dim: int = 128
    num_patterns: int = 64
    beta: float = 4.0  # inverse temperature of the retrieval's softmax (learned with `learn_beta`)
    steps: int = 1  # retrieval updates
    residual: bool = True  # the query added to the retrieved state
    learn_beta: bool = True


@register_memory("hopfield", "modern continuous Hopfield retrieval over learned stored patterns (Ramsauer et al. 2020)",
                 HopfieldOptions,
                 loihi_reason="softmax retrieval and LayerNorm on pooled float rates (the spiking form is hopfield-spiking)")
class HopfieldMemory(MemoryModule):
    def build(self, o: HopfieldOptions) -> None:
        self.queries = nn.ModuleDict({m: nn.Sequential(nn.Linear(size * o.time_bins, o.dim), nn.LayerNorm(o.dim))
                                      for m, size in self.input_sizes.items()})
        self.patterns = nn.Parameter(torch.randn(o.num_patterns, o.dim) / math.sqrt(o.dim))
        log_beta = torch.tensor(math.log(o.beta))
        self.log_beta = nn.Parameter(log_beta) if o.learn_beta else nn.Buffer(log_beta)
        self.time_bins, self.steps, self.residual = o.time_bins, o.steps, o.residual
        self.output_size = o.dim

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

    def associative_recall(self) -> AssociativeRecall:
        beta, steps = float(self.beta.detach()), self.steps
        return AssociativeRecall(self.output_size, beta, float(self.patterns.detach().norm(dim=-1).mean()),
                                 f"xi <- softmax(beta xi X^T) X (hopfield_retrieve), {steps} step(s), trained beta {beta:.3g}",
                                 lambda cues, patterns: hopfield_retrieve(cues, patterns, beta, steps)[0])
