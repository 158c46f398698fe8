"""`hgrn`: a Hierarchically Gated Recurrent Network over the spike train.

Each modality's spike train (T, batch, D_m) is projected per time step into a
shared model dimension and run through a stack of HGRN layers (shared by all
modalities, so a joint network has one memory). A layer is the paper's
token mixer (HGRU: gated linear recurrence with a forget-gate lower bound
that rises with depth, output gate, pre-norm, residual) followed by a GLU
channel mixer (residual). The math is in `neuromem.memory.functional.hgrn`.

Representation: the final layer's outputs averaged in `readout_windows` consecutive time windows
(10 by default), each window normalized, concatenated window-major (batch, windows * dim)
(`pooling="windows"`, default: the readout sees when evidence came, as the rate-reading memories
do); or one normalized time average (batch, dim) (`pooling="mean"`), or the last time step
(`pooling="last"`: the recurrent state alone must hold the memory). The norm comes after the
pooling: normalized per step, every (mostly silent) step weighed the same in the average and the
representation barely varied between samples (speech stand-in: train accuracy 0.21, see
datasets/README.md).
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
    check_choice,
    check_positive_int,
    register_memory,
)
from neuromem.memory.functional.hgrn import gated_scan, gated_scan_loop, hgru_recurrence, layer_lower_bounds
from neuromem.memory.functional.pooling import windowed_rates

POOLINGS = ("windows", "mean", "last")
SCANS = {"chunked": gated_scan, "loop": gated_scan_loop}


class HGRNLayer(nn.Module):
    """One HGRN block: x + HGRU(norm(x)), then x + GLU(norm(x)). (T, batch, dim) -> same."""

    def __init__(self, dim: int, expand: int) -> None:
        super().__init__()
        self.mix_norm = nn.LayerNorm(dim)
        self.gates = nn.Linear(dim, 3 * dim)  # forget, candidate, output-gate pre-activations
        self.out_norm = nn.LayerNorm(dim)
        self.out_proj = nn.Linear(dim, dim)
        self.channel_mixer = None
        if expand > 0:
            self.channel_norm = nn.LayerNorm(dim)
            self.channel_in = nn.Linear(dim, 2 * expand * dim)
            self.channel_mixer = nn.Linear(expand * dim, dim)

    def forward(self, x: torch.Tensor, lower_bound: torch.Tensor, scan) -> tuple[torch.Tensor, torch.Tensor]:
        forget_logits, candidate_logits, output_logits = self.gates(self.mix_norm(x)).chunk(3, dim=-1)
        states, forget = hgru_recurrence(forget_logits, candidate_logits, lower_bound, scan=scan)
        x = x + self.out_proj(self.out_norm(states * F.silu(output_logits)))
        if self.channel_mixer is not None:
            value, gate = self.channel_in(self.channel_norm(x)).chunk(2, dim=-1)
            x = x + self.channel_mixer(value * F.silu(gate))
        return x, forget


@dataclass(frozen=True)
class HGRNOptions(MemoryOptions):
    dim: int = 128
    layers: int = 2
    expand: int = 2  # the GLU channel mixer's expansion (0: none)
    pooling: str = "windows"
    scan: str = "chunked"
    time_bins: int | None = None  # pooled windows the recurrence runs over (None: every step)
    readout_windows: int = 10

    def check(self, memory: str) -> None:
        super().check(memory)
        check_positive_int(memory, readout_windows=self.readout_windows)
        if self.time_bins is not None and (isinstance(self.time_bins, bool) or not isinstance(self.time_bins, int)
                                           or self.time_bins < 1):
            raise ValueError(f"{memory} option time_bins must be a positive integer (or null: every step), "
                             f"got {self.time_bins!r}")
        check_positive_int(memory, dim=self.dim)
        if not isinstance(self.layers, int) or self.layers < 1:
            raise ValueError(f"{memory} option layers must be >= 1 (the hierarchy needs >= 2), got {self.layers}")
        if not isinstance(self.expand, int) or self.expand < 0:
            raise ValueError(f"{memory} option expand must be >= 0 (0 disables the GLU channel mixer), got {self.expand}")
        check_choice(memory, "pooling", self.pooling, POOLINGS)
        check_choice(memory, "scan", self.scan, tuple(SCANS))


@register_memory("hgrn", "hierarchically gated linear recurrence, forget-gate lower bound rising with depth (Qin et al. 2023)",
                 HGRNOptions,
                 loihi_reason="input-dependent multiplicative gates (a product of two activity-driven signals)")
class HGRNMemory(MemoryModule):
    def build(self, o: HGRNOptions) -> None:
        self.inputs = nn.ModuleDict({m: nn.Linear(size, o.dim) for m, size in self.input_sizes.items()})
        # equal logits: bounds start at 0, 1/L, 2/L, ... and are learned per channel
        self.bound_logits = nn.Parameter(torch.ones(o.layers, o.dim))
        self.blocks = nn.ModuleList(HGRNLayer(o.dim, o.expand) for _ in range(o.layers))
        self.final_norm = nn.LayerNorm(o.dim)
        self.time_bins, self.pooling, self.scan = o.time_bins, o.pooling, SCANS[o.scan]
        self.windows = o.readout_windows if o.pooling == "windows" else 1
        self.output_size = o.dim * self.windows

    def lower_bounds(self) -> torch.Tensor:
        """Forget-gate lower bound per layer and channel (layers, dim)."""
        return layer_lower_bounds(self.bound_logits)

    def encode(self, spikes: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Spike train (T, batch, D_m) of an already-projected modality -> the last layer's outputs (T, batch, dim),
        before the final norm, and the forget gates."""
        bounds = self.lower_bounds()
        forgets = []
        x = spikes
        for block, bound in zip(self.blocks, bounds):
            x, forget = block(x, bound, self.scan)
            forgets.append(forget)
        return x, forgets

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> MemoryOutput:
        representations, mean_forget = {}, {}
        for modality, spikes in inputs.items():
            frames = spikes if self.time_bins is None else windowed_rates(spikes, self.time_bins)
            outputs, forgets = self.encode(self.inputs[modality](frames))
            # normalized after pooling: normalizing each step first gave every (mostly silent) step
            # equal weight in the mean, and the representation barely varied between samples
            if self.pooling == "windows":  # (windows, batch, dim) -> each window normalized, window-major
                pooled = windowed_rates(outputs, self.windows)
                representations[modality] = self.final_norm(pooled).transpose(0, 1).flatten(1)
            else:
                representations[modality] = self.final_norm(outputs.mean(0) if self.pooling == "mean" else outputs[-1])
            mean_forget[modality] = torch.stack([f.detach().mean() for f in forgets])
        # per-layer means, detached: for logging and the engram report, not for a loss
        extras = {"mean_forget": mean_forget, "lower_bounds": self.lower_bounds().detach().mean(-1)}
        return MemoryOutput(representations, extras)
