"""`hgrn`: a Hierarchically Gated Recurrent Network over the spike train.

Each modality's spike train (T, batch, D_m) is projected per time step into a
shared model dimension and run through a stack of HGRN layers (shared by all
modalities, so a joint network has one memory). A layer is the paper's
token mixer (HGRU: gated linear recurrence with a forget-gate lower bound
that rises with depth, output gate, pre-norm, residual) followed by a GLU
channel mixer (residual). The math is in `neuromem.memory.functional.hgrn`.

Representation (batch, dim): the final layer's normalized output averaged
over time (`pooling="mean"`, default: every step's evidence counts, which
suits rate-coded N-MNIST and long SHD utterances alike) or taken at the last
time step (`pooling="last"`: the recurrent state alone must hold the memory).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from neuromem.memory.base import MemoryModule, MemoryOutput, register_memory
from neuromem.memory.functional.hgrn import gated_scan, gated_scan_loop, hgru_recurrence, layer_lower_bounds
from neuromem.memory.functional.pooling import windowed_rates

POOLINGS = ("mean", "last")
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


@register_memory("hgrn", "hierarchically gated linear recurrence, forget-gate lower bound rising with depth (Qin et al. 2023)",
                 loihi_reason="input-dependent multiplicative gates (a product of two activity-driven signals)")
class HGRNMemory(MemoryModule):
    def __init__(
        self,
        input_sizes: Mapping[str, int],
        dim: int = 128,
        layers: int = 2,
        expand: int = 2,
        pooling: str = "mean",
        scan: str = "chunked",
        time_bins: int | None = None,
    ) -> None:
        super().__init__(input_sizes, dim=dim, layers=layers, expand=expand, pooling=pooling, scan=scan,
                         time_bins=time_bins)
        if time_bins is not None and (isinstance(time_bins, bool) or not isinstance(time_bins, int) or time_bins < 1):
            raise ValueError(f"hgrn option time_bins must be a positive integer (or null: every step), got {time_bins!r}")
        self.time_bins = time_bins
        if int(dim) < 1:
            raise ValueError(f"hgrn option dim must be a positive integer, got {dim}")
        if int(layers) < 1:
            raise ValueError(f"hgrn option layers must be >= 1 (the hierarchy needs >= 2), got {layers}")
        if int(expand) < 0:
            raise ValueError(f"hgrn option expand must be >= 0 (0 disables the GLU channel mixer), got {expand}")
        if pooling not in POOLINGS:
            raise ValueError(f"hgrn option pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        if scan not in SCANS:
            raise ValueError(f"hgrn option scan must be one of {', '.join(SCANS)}, got {scan!r}")
        dim, layers, expand = int(dim), int(layers), int(expand)
        self.inputs = nn.ModuleDict({m: nn.Linear(size, dim) for m, size in input_sizes.items()})
        # equal logits: bounds start at 0, 1/L, 2/L, ... and are learned per channel
        self.bound_logits = nn.Parameter(torch.ones(layers, dim))
        self.blocks = nn.ModuleList(HGRNLayer(dim, expand) for _ in range(layers))
        self.final_norm = nn.LayerNorm(dim)
        self.pooling, self.scan = pooling, SCANS[scan]
        self.output_size = dim

    def lower_bounds(self) -> torch.Tensor:
        """Forget-gate lower bound per layer and channel (layers, dim)."""
        return layer_lower_bounds(self.bound_logits)

    def encode(self, spikes: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Spike train (T, batch, D_m) of an already-projected modality -> outputs (T, batch, dim), forget gates."""
        bounds = self.lower_bounds()
        forgets = []
        x = spikes
        for block, bound in zip(self.blocks, bounds):
            x, forget = block(x, bound, self.scan)
            forgets.append(forget)
        return self.final_norm(x), forgets

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> MemoryOutput:
        representations, mean_forget = {}, {}
        for modality, spikes in inputs.items():
            frames = spikes if self.time_bins is None else windowed_rates(spikes, self.time_bins)
            outputs, forgets = self.encode(self.inputs[modality](frames))
            representations[modality] = outputs.mean(0) if self.pooling == "mean" else outputs[-1]
            mean_forget[modality] = torch.stack([f.detach().mean() for f in forgets])
        # per-layer means, detached: for logging and the engram report, not for a loss
        extras = {"mean_forget": mean_forget, "lower_bounds": self.lower_bounds().detach().mean(-1)}
        return MemoryOutput(representations, extras)
