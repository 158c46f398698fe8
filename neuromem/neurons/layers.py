"""Spiking layers: a synapse (linear or conv) followed by LIF/CUBA neurons.

Every spiking layer takes and returns (T, batch, ...) tensors. The synaptic
projection runs once over all T*batch inputs (hoisted out of the time loop);
only the neuron state update is sequential. Accounting hooks on `SpikingLayer`
(input spikes in, spikes out) to count synaptic operations.
"""

from __future__ import annotations

import torch
from torch import nn

from neuromem.neurons.functional.lif import (
    CUBAParameters,
    LIFParameters,
    cuba_sequence,
    fast_path_enabled,
    lif_sequence,
)

NEURON_KINDS = ("lif", "cuba")


def make_parameters(kind: str, **overrides) -> LIFParameters:
    if kind == "lif":
        overrides.pop("alpha", None)
        return LIFParameters(**overrides)
    if kind == "cuba":
        return CUBAParameters(**overrides)
    raise ValueError(f"unknown neuron kind {kind!r}; valid: {', '.join(NEURON_KINDS)}")


class SpikingLayer(nn.Module):
    """Base: `synapse` maps one time step's input to currents; neurons integrate over time."""

    synapse: nn.Module

    def __init__(self, parameters: LIFParameters, recurrent_size: int | None = None) -> None:
        super().__init__()
        self.parameters_ = parameters
        self.recurrent = None
        if recurrent_size is not None:
            self.recurrent = nn.Parameter(torch.empty(recurrent_size, recurrent_size))
            # orthogonal init keeps recurrent drive bounded at the start of training
            nn.init.orthogonal_(self.recurrent, gain=0.5)

    @property
    def neuron(self) -> LIFParameters:
        return self.parameters_

    # Convolutions over all T*batch frames at once need workspace (im2col, backward buffers)
    # proportional to the frame count; chunks of at most this many frames keep the peak memory
    # near a per-step loop's at no measurable speed cost. Linear layers run in one piece.
    conv_chunk_frames: int = 512

    def project(self, inputs: torch.Tensor) -> torch.Tensor:
        steps, batch = inputs.shape[:2]
        frames = inputs.reshape(steps * batch, *inputs.shape[2:])
        if isinstance(self.synapse, nn.Conv2d) and frames.shape[0] > self.conv_chunk_frames and fast_path_enabled():
            currents = torch.cat([self.synapse(chunk) for chunk in frames.split(self.conv_chunk_frames)])
        else:
            currents = self.synapse(frames)
        return currents.reshape(steps, batch, *currents.shape[1:])

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        currents = self.project(inputs)
        if isinstance(self.parameters_, CUBAParameters):
            spikes, _ = cuba_sequence(currents, self.parameters_, self.recurrent)
        else:
            spikes, _ = lif_sequence(currents, self.parameters_, self.recurrent)
        return spikes


class SpikingLinear(SpikingLayer):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        neuron: str = "lif",
        recurrent: bool = False,
        **neuron_overrides,
    ) -> None:
        super().__init__(make_parameters(neuron, **neuron_overrides), out_features if recurrent else None)
        self.synapse = nn.Linear(in_features, out_features)
        self.in_features, self.out_features = in_features, out_features


class SpikingConv2d(SpikingLayer):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        neuron: str = "lif",
        **neuron_overrides,
    ) -> None:
        super().__init__(make_parameters(neuron, **neuron_overrides))
        self.synapse = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
