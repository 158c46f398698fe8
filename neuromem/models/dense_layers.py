"""Non-spiking twins of the spiking layers, for the ANN-equivalent baselines.

Same synapses and shapes as `SpikingLinear` / `SpikingConv2d`, with ReLU
activations instead of LIF neurons, so a dense baseline is the same graph with
dense activations on the same (T, batch, ...) input. The recurrent weight is an
`nn.Linear` so operation counters see it as an ordinary MAC layer.
"""

from __future__ import annotations

import torch
from torch import nn

from neuromem.neurons.synapses import SparseInputLinear


class DenseSequenceLayer(nn.Module):
    synapse: nn.Module

    def __init__(self, recurrent_size: int | None = None) -> None:
        super().__init__()
        self.recurrent = nn.Linear(recurrent_size, recurrent_size, bias=False) if recurrent_size else None
        if self.recurrent is not None:
            nn.init.orthogonal_(self.recurrent.weight, gain=0.5)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        steps, batch = inputs.shape[:2]
        if getattr(self.synapse, "temporal", False):  # a synapse over time (learnable delays)
            drive = self.synapse(inputs)
        else:
            drive = self.synapse(inputs.reshape(steps * batch, *inputs.shape[2:]))
            drive = drive.reshape(steps, batch, *drive.shape[1:])
        if self.recurrent is None:
            return torch.relu(drive)
        hidden = torch.zeros_like(drive[0])
        outputs = []
        for x in drive:
            hidden = torch.relu(x + self.recurrent(hidden))
            outputs.append(hidden)
        return torch.stack(outputs)


class DenseLinear(DenseSequenceLayer):
    def __init__(self, in_features: int, out_features: int, recurrent: bool = False, **_neuron_params) -> None:
        super().__init__(out_features if recurrent else None)
        # an nn.Linear that also takes frames (rows, C, H, W), as `SpikingLinear`'s synapse does
        self.synapse = SparseInputLinear(in_features, out_features)


class DenseConv2d(DenseSequenceLayer):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, **_neuron_params) -> None:
        super().__init__()
        self.synapse = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
