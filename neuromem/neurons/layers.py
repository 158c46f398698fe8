"""Spiking layers: a synapse (linear or conv) followed by neurons of any registered model.

Every spiking layer takes and returns (T, batch, ...) tensors. The synaptic
projection runs once over all T*batch inputs (hoisted out of the time loop);
only the neuron state update is sequential. On the fast path the synapses sum
over the active inputs only (`synapses.py`), and a convolution hands its
currents over channels-last, which the neurons keep (they are elementwise).
Accounting hooks on `SpikingLayer` (input spikes in, spikes out) to count
synaptic operations.
"""

from __future__ import annotations

import torch
from torch import nn

from typing import Any

from neuromem.neurons.functional.conv_lif import conv_lif_sequence
from neuromem.neurons.functional.neuron import fast_path_enabled, neuron_sequence
from neuromem.neurons.models import get_neuron, neuron_names, neuron_of
from neuromem.neurons.synapses import SparseInputConv2d, SparseInputLinear


def make_parameters(kind: str, **overrides) -> Any:
    """The parameter record of the registered neuron model `kind`; overrides that are fields of
    another model only (e.g. CUBA's alpha given to every layer of a grid) are dropped."""
    model = get_neuron(kind)
    fields = model.parameters.__dataclass_fields__
    foreign = {
        name for other in neuron_names() for name in get_neuron(other).parameters.__dataclass_fields__
    } - set(fields)
    return model.make_parameters(**{k: v for k, v in overrides.items() if k not in foreign})


class SpikingLayer(nn.Module):
    """Base: `synapse` maps one time step's input to currents; neurons integrate over time."""

    synapse: nn.Module

    def __init__(self, parameters: Any, recurrent_size: int | None = None) -> None:
        super().__init__()
        neuron_of(parameters)  # a record of a registered model, or a one-line TypeError here
        self.parameters_ = parameters
        self.recurrent = None
        if recurrent_size is not None:
            self.recurrent = nn.Parameter(torch.empty(recurrent_size, recurrent_size))
            # orthogonal init keeps recurrent drive bounded at the start of training
            nn.init.orthogonal_(self.recurrent, gain=0.5)

    @property
    def model(self):
        """The registry entry of the layer's neuron model (from its parameter record): every dispatch reads it."""
        return neuron_of(self.parameters_)

    @property
    def neuron(self) -> Any:
        return self.parameters_

    # Convolutions over all T*batch frames at once need workspace (im2col, backward buffers)
    # proportional to the frame count; chunks of at most this many frames keep the peak memory
    # near a per-step loop's at no measurable speed cost. Linear layers run in one piece.
    conv_chunk_frames: int = 512

    def project(self, inputs: torch.Tensor) -> torch.Tensor:
        if getattr(self.synapse, "temporal", False):  # a synapse over time (learnable delays, `delays.py`)
            return self.synapse(inputs)
        steps, batch = inputs.shape[:2]
        frames = inputs.reshape(steps * batch, *inputs.shape[2:])
        if isinstance(self.synapse, nn.Conv2d) and fast_path_enabled():
            currents = self.synapse(frames, chunk_frames=self.conv_chunk_frames)
        else:
            currents = self.synapse(frames)
        return currents.reshape(steps, batch, *currents.shape[1:])

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        currents = self.project(inputs)
        # neurons are elementwise: run them in the currents' memory order (channels-last from the
        # sparse convolution) rather than copying to the logical order, and hand back spikes in it
        order = _memory_order(currents)
        currents = currents.permute(order)
        spikes, _ = neuron_sequence(self.model, currents, self.parameters_, self.recurrent)
        return spikes.permute(_inverse(order))


def _memory_order(tensor: torch.Tensor) -> tuple[int, ...]:
    """The dimension order in which `tensor` is contiguous (identity if none); time stays first."""
    identity = tuple(range(tensor.dim()))
    if tensor.is_contiguous():
        return identity
    order = (0,) + tuple(sorted(range(1, tensor.dim()), key=lambda d: -tensor.stride(d)))
    return order if tensor.permute(order).is_contiguous() else identity


def _inverse(order: tuple[int, ...]) -> tuple[int, ...]:
    inverse = [0] * len(order)
    for position, dim in enumerate(order):
        inverse[dim] = position
    return tuple(inverse)


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
        self.synapse = SparseInputLinear(in_features, out_features)
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
        self.synapse = SparseInputConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        spikes = self._fused(inputs)
        return spikes if spikes is not None else super().forward(inputs)

    def _fused(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """Synapse and neurons in one pass per frame (`functional/conv_lif.py`), where it applies: a
        model with a fused kernel (its registry entry says so), and nothing observes the synapse on
        its own (hooks, e.g. operation counting, run unfused)."""
        synapse = self.synapse
        if (
            not self.model.fused_conv
            or synapse._forward_pre_hooks or synapse._forward_hooks
            or not synapse._plain()
        ):
            return None
        return conv_lif_sequence(
            inputs, synapse.weight, synapse.bias, synapse.stride[0], synapse.padding[0], self.model, self.parameters_
        )
