"""Pure counting math: synaptic operations of one connection given its input.

Definitions follow NeuroBench (neurobench.metrics.workload.SynapticOperations):

* an *effective* synaptic operation is one non-zero input reaching one
  non-zero weight; the bias is not a synaptic operation;
* the *dense* count is the same graph with every input and every weight
  treated as non-zero (what a conventional accelerator executes);
* an operation is an accumulate (AC) when the input that drives it is binary
  (every value in {-1, 0, 1}: a spike selects a weight, nothing is multiplied)
  and a multiply-accumulate (MAC) otherwise.

Effective operations are counted as `sum(non-zero input count x fan-out)`,
where the fan-out of an input element is the number of non-zero weights it
reaches. For a convolution the fan-out depends on the element's position
(borders, stride, dilation, groups); it is taken exactly as the gradient of
the summed output of a bias-free copy of the layer with binarised weights with
respect to an all-ones input — the layer is linear, so that gradient is the
number of (output, weight) pairs each input element feeds.
"""

from __future__ import annotations

import torch
from torch import nn

CONNECTION_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def is_binary(values: torch.Tensor) -> bool:
    """NeuroBench's spiking test: all values in {-1, 0, 1}."""
    if values.numel() == 0:
        return True
    values = values.detach()
    return bool(((values == 0) | (values == 1) | (values == -1)).all())


def linear_fanout(weight: torch.Tensor, dense: bool) -> torch.Tensor:
    """Per-input-feature fan-out of an (out, in) weight: non-zero weights per column."""
    if dense:
        return torch.full((weight.shape[1],), float(weight.shape[0]), dtype=torch.float64)
    return (weight.detach() != 0).sum(0).to(torch.float64)


_DENSE_FANOUT_CACHE: dict[tuple, torch.Tensor] = {}


def conv_fanout(conv: nn.Module, input_shape: tuple[int, ...], dense: bool) -> torch.Tensor:
    """Per-input-element fan-out map (C, *spatial) of a convolution, borders and stride included."""
    weight = conv.weight.detach()
    if dense or bool((weight != 0).all()):
        # without zero weights the map depends only on the geometry: cache it
        key = (
            type(conv), tuple(weight.shape), tuple(input_shape), conv.stride, conv.padding,
            conv.dilation, conv.groups, conv.padding_mode,
        )
        if key not in _DENSE_FANOUT_CACHE:
            if len(_DENSE_FANOUT_CACHE) > 256:
                _DENSE_FANOUT_CACHE.clear()
            _DENSE_FANOUT_CACHE[key] = _conv_fanout(conv, weight, input_shape, dense=True)
        return _DENSE_FANOUT_CACHE[key]
    return _conv_fanout(conv, weight, input_shape, dense=False)


def _conv_fanout(conv: nn.Module, weight: torch.Tensor, input_shape: tuple[int, ...], dense: bool) -> torch.Tensor:
    mask = torch.ones_like(weight, dtype=torch.float64) if dense else (weight != 0).to(torch.float64)
    probe = torch.ones((1, *input_shape), dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        # _conv_forward applies the layer's own padding mode, stride, dilation and groups
        output = conv._conv_forward(probe, mask, None)
        (fanout,) = torch.autograd.grad(output.sum(), probe)
    return fanout[0]


def connection_operations(connection: nn.Module, inputs: torch.Tensor) -> tuple[float, float]:
    """(effective, dense) synaptic operations of one call of a Linear/Conv on `inputs`."""
    inputs = inputs.detach()
    if isinstance(connection, nn.Linear):
        features = connection.in_features  # inputs (..., in), or frames (rows, C, H, W) a spiking linear layer flattens
        active_per_feature = (inputs != 0).reshape(-1, features).sum(0).to(torch.float64)
        rows = inputs.numel() // features
        effective = float(active_per_feature @ linear_fanout(connection.weight, dense=False))
        dense = float(rows * features * connection.weight.shape[0])
        return effective, dense
    spatial_dims = connection.weight.dim() - 2
    batched = inputs.dim() == spatial_dims + 2
    sample_shape = tuple(inputs.shape[1:] if batched else inputs.shape)
    samples = inputs.shape[0] if batched else 1
    active = (inputs != 0).to(torch.float64)
    active_map = active.sum(0) if batched else active
    effective = float((active_map * conv_fanout(connection, sample_shape, dense=False)).sum())
    dense = float(samples * conv_fanout(connection, sample_shape, dense=True).sum())
    return effective, dense


def recurrent_operations(spikes: torch.Tensor, recurrent_weight: torch.Tensor) -> tuple[float, float]:
    """(effective, dense) operations of a recurrent (out, out) weight driven by the
    previous step's outputs of a (T, batch, out) sequence: step t's activity reaches
    step t + 1, so the last step drives nothing and the first step's zero initial
    state costs nothing (NeuroBench counts no hidden-state ops without a state)."""
    if spikes.shape[0] < 2:
        return 0.0, 0.0
    driving = spikes[:-1].detach()
    neurons = driving.shape[-1]
    active_per_neuron = (driving != 0).reshape(-1, neurons).sum(0).to(torch.float64)
    effective = float(active_per_neuron @ linear_fanout(recurrent_weight, dense=False))
    rows = driving.numel() // neurons
    dense = float(rows * neurons * recurrent_weight.shape[0])
    return effective, dense


def matmul_macs(func, args: tuple, kwargs: dict, output) -> float | None:
    """Dense MACs of one aten matmul/convolution call (None for any other op)."""
    from torch.utils.flop_counter import flop_registry

    counter = flop_registry.get(func.overloadpacket)
    if counter is None or func.overloadpacket in _BACKWARD_OPS:
        return None
    return counter(*args, **kwargs, out_val=output) / 2.0  # the registry counts 2 flops per MAC


_BACKWARD_OPS = {torch.ops.aten.convolution_backward}


def weight_zero_count(module: nn.Module) -> tuple[int, int]:
    """(zero weights, weights) of a connection module; biases are not connections (NeuroBench)."""
    weight = module.weight.detach()
    return int((weight == 0).sum()), weight.numel()


def binarised_conv_output(conv: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Reference used by tests: a bias-free conv of the binary input mask with the binary weight mask."""
    mask = (conv.weight.detach() != 0).to(torch.float64)
    return conv._conv_forward((inputs.detach() != 0).to(torch.float64), mask, None)


__all__ = [
    "CONNECTION_TYPES",
    "is_binary",
    "linear_fanout",
    "conv_fanout",
    "connection_operations",
    "recurrent_operations",
    "matmul_macs",
    "weight_zero_count",
    "binarised_conv_output",
]
