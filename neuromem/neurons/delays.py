"""Learnable synaptic delays, after DCLS (Hammouamri et al., ICLR 2024: "Learning delays in spiking neural
networks using dilated convolutions with learnable spacings"): every connection i -> o of a linear synapse
carries its own delay d_oi in [0, D - 1] time steps, trained by gradient descent as a position.

The synapse is a causal temporal convolution over (T, batch, in) inputs: the kernel of connection (o, i) is
its weight times a tap vector over the D delays,

    kernel[o, i, k] = w_oi * g(k - d_oi),   g: a Gaussian of width sigma, normalised over k = 0..D-1,

so the drive of neuron o at step t is sum_i sum_k kernel[o, i, k] x_i[t - k], a causal convolution. It runs
as one linear map of each step's input to every (delay, neuron) pair, u[t, k, o] = sum_i kernel[o, i, k] x_i[t],
through the sparse-input synapse (`functional/sparse.py`: only the active inputs are summed, on CPU), then a
sum along the diagonals, y[t, o] = sum_k u[t - k, k, o]: on spikes far cheaper than the dense convolution
(`causal_delay_conv`, the reference), and u[t, k] is what Lava's delayed synapses sum per delay slot.

The Gaussian spreads a fractional position over its neighbouring steps, which is what gives d its gradient;
DCLS shrinks sigma over training toward 0, where the kernel is one spike at the rounded delay. Here sigma
is fixed per synapse (`delay_sigma`, default 1 step) unless the training loop anneals it (`anneal_delays`,
the DCLS schedule). DCLS trains the positions at 100x the weights' learning rate; the parameter `delay`
holds d / DELAY_UNIT (DELAY_UNIT = 100 steps), which under Adam is the same thing without a parameter
group of its own.

Rounding (`round_delays`): the taps become one-hot at round(d), an exact integer-step shift (a spike at t
arrives at t + round(d)); the Gaussian stays in the backward pass only (straight-through), so a rounded
synapse can still be trained. A rounded float synapse is what evaluates and exports once rounding is asked
for (the flag is a buffer: it travels in the state dict). Loihi synapses are always rounded: the chip's
delays are integers (Lava's DelaySparse, 6 bits: 0..63 steps), and their integer weights and per-delay
dendritic sums are reproduced bit for bit (`DelayedQuantizedDense`).

`delay_synapses(layer, D)` gives any linear neuron layer (float spiking, Loihi, dense ReLU twin) delayed
feed-forward synapses, keeping its weights; a recurrent weight is never delayed. With no delays nothing here
runs: the layers keep their own synapses and fast paths.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch import nn
from torch.nn import functional as F

from neuromem.neurons.functional.loihi import quantize_weight, shift_activation

DEFAULT_SIGMA = 1.0  # taps' width in steps while training, unless annealed
FINAL_SIGMA = 0.5  # where the DCLS schedule ends
TAIL_CUTOFF = 6.0  # Gaussian taps further than this many sigma beyond the nearest step are zero
DELAY_UNIT = 100.0  # the `delay` parameter counts in these many steps: Adam moves delays 100x faster than weights
LOIHI_MAX_WINDOW = 64  # Loihi 2 / Lava DelaySparse: 6-bit delays, 0..63 steps


def delay_taps(positions: torch.Tensor, window: int, sigma: float, rounded: bool) -> torch.Tensor:
    """(out, in) delay positions in [0, window - 1] -> (out, in, window) taps over the delays 0..window-1.

    Soft: a Gaussian of width `sigma` around each position, summing to 1. Rounded: one-hot at round(d)
    in the forward pass, the soft taps' gradient in the backward pass."""
    steps = torch.arange(window, dtype=positions.dtype, device=positions.device)
    squared = ((steps - positions.unsqueeze(-1)) / sigma) ** 2
    # relative to the nearest step (the normalisation cancels the factor): no underflow at a small sigma;
    # tails below e^-18 of it are zero rather than subnormal floats, which slowed the backward products ~5x
    squared = squared - squared.min(-1, keepdim=True).values.detach()
    soft = torch.exp(-0.5 * squared) * (squared < TAIL_CUTOFF**2)
    soft = soft / soft.sum(-1, keepdim=True)
    if not rounded:
        return soft
    hard = F.one_hot(torch.round(positions.detach()).long(), window).to(soft.dtype)
    return hard + (soft - soft.detach())


def causal_delay_conv(inputs: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """inputs (T, batch, in), kernel (out, in, D) indexed by delay -> (T, batch, out):
    out[t] = sum_k kernel[:, :, k] @ inputs[t - k] (+ bias), zeros before the first step. The reference
    (dense convolution) of `diagonal_sum(per_delay_sums(...))`."""
    window = kernel.shape[-1]
    padded = F.pad(inputs.permute(1, 2, 0), (window - 1, 0))  # (batch, in, D - 1 + T)
    return F.conv1d(padded, kernel.flip(-1), bias).permute(2, 0, 1)


def per_delay_sums(inputs: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """inputs (T, batch, in), kernel (out, in, D) -> u (T, batch, D, out), u[t, :, k] = inputs[t] @ kernel[:, :, k].T:
    each step's drive of every neuron over each delay, to arrive k steps later. One linear map through the
    sparse-input synapse (sums over the active inputs only; the dense matmul for dense inputs or off CPU)."""
    from neuromem.neurons.functional.sparse import sparse_input_linear

    steps, batch, features = inputs.shape
    out, _, window = kernel.shape
    # (in, D, out) contiguous: the stacked weight (D * out, in) as its transpose, the layout the sparse sums read
    stacked = kernel.permute(1, 2, 0).reshape(features, window * out).t()
    sums = sparse_input_linear(inputs.reshape(steps * batch, features), stacked)
    return sums.view(steps, batch, window, out)


class _DiagonalSum(torch.autograd.Function):
    """y[t] = sum_k u[t - k, :, k]; its gradient is the gather du[t, :, k] = dy[t + k] (zero past the end),
    written once (autograd through slice additions zero-filled a whole u per delay)."""

    @staticmethod
    def forward(ctx, sums: torch.Tensor) -> torch.Tensor:
        steps, window = sums.shape[0], sums.shape[2]
        total = sums[:, :, 0].clone()
        for k in range(1, min(window, steps)):
            total[k:] += sums[:-k, :, k]
        ctx.window = window
        return total

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor) -> torch.Tensor:
        steps, window = grad_total.shape[0], ctx.window
        grad = grad_total.new_empty(steps, *grad_total.shape[1:-1], window, grad_total.shape[-1])
        for k in range(window):
            grad[: max(steps - k, 0), :, k] = grad_total[k:]
            grad[max(steps - k, 0):, :, k] = 0
        return grad


def diagonal_sum(sums: torch.Tensor) -> torch.Tensor:
    """u (T, batch, D, out) -> y (T, batch, out), y[t] = sum_k u[t - k, :, k] (what arrives at t)."""
    return _DiagonalSum.apply(sums)


class _LearnableDelays:
    """Delay positions (out, in) of a synapse in [0, window - 1] and what reads them. Mixed into nn.Linear."""

    temporal = True  # the synapse takes the whole (T, batch, in) sequence, not one step's frames

    def _init_delays(self, window: int, sigma: float | None) -> None:
        window = int(window)
        if window < 1:
            raise ValueError(f"delays: the delay window must be >= 1 step, got {window}")
        self.window = window
        self.sigma = DEFAULT_SIGMA if sigma is None else float(sigma)
        if not self.sigma > 0:
            raise ValueError(f"delay_sigma must be > 0, got {sigma}")
        # uniform over the window, in units of DELAY_UNIT steps
        self.delay = nn.Parameter(torch.rand(self.out_features, self.in_features) * ((window - 1) / DELAY_UNIT))
        self.register_buffer("rounded", torch.tensor(False))

    def positions(self) -> torch.Tensor:
        """The delays in steps (out, in), clamped into the window in place first (where DCLS clamps after
        each optimizer step)."""
        with torch.no_grad():
            self.delay.clamp_(0, (self.window - 1) / DELAY_UNIT)
        return self.delay * DELAY_UNIT

    def set_delays(self, steps: torch.Tensor) -> None:
        """Set the delays to `steps` (out, in), in time steps."""
        with torch.no_grad():
            self.delay.copy_(torch.as_tensor(steps, dtype=self.delay.dtype) / DELAY_UNIT)

    def integer_delays(self) -> torch.Tensor:
        """(out, in) int64 delays in steps, as the rounded synapse applies them."""
        return torch.round(self.positions().detach()).long()

    def taps(self, rounded: bool | None = None) -> torch.Tensor:
        return delay_taps(self.positions(), self.window, self.sigma, bool(self.rounded) if rounded is None else rounded)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, delays 0..{self.window - 1}, "
                f"sigma={self.sigma:g}, rounded={bool(self.rounded)}")


class DelayedLinear(_LearnableDelays, nn.Linear):
    """A float linear synapse (another layer's weight and bias, kept) with a learnable delay per connection.

    Takes (T, batch, in) (or (T, batch, C, H, W), flattened in (C, H, W) order); returns (T, batch, out)."""

    def __init__(self, source: nn.Linear, window: int, sigma: float | None = None) -> None:
        nn.Module.__init__(self)
        self.in_features, self.out_features = source.in_features, source.out_features
        self.weight = source.weight
        self.bias = source.bias
        self._init_delays(window, sigma)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        inputs = inputs.flatten(2) if inputs.dim() > 3 else inputs
        kernel = self.weight.unsqueeze(-1) * self.taps().to(self.weight.dtype)
        drive = diagonal_sum(per_delay_sums(inputs.to(kernel.dtype), kernel))
        return drive if self.bias is None else drive + self.bias


class DelayedQuantizedDense(_LearnableDelays, nn.Linear):
    """Loihi's 8-bit synapse (another `QuantizedDense`'s weights and exponent, kept) with an integer delay
    per connection: Lava's DelaySparse / DelayDense fixed point, which sums each step's spikes per delay
    into a buffer slot (shifted by the weight exponent per delay) and delivers slot d d steps later.

    Takes (T, batch, in) binary spikes; returns the integer activations (T, batch, out), float64, delayed
    by the connection delays only: the Dense's own step is added by the layer (`delay_one_step`), so a
    spike at t reaches the neurons at t + 1 + d, as on Lava. Always rounded (the Gaussian is the
    backward pass of the positions)."""

    def __init__(self, source: nn.Linear, window: int, sigma: float | None = None) -> None:
        if window > LOIHI_MAX_WINDOW:
            raise ValueError(f"delays={window}: Loihi 2 synaptic delays are 6-bit (0..63 steps), so at most "
                             f"{LOIHI_MAX_WINDOW} for neuron 'loihi'")
        nn.Module.__init__(self)
        self.in_features, self.out_features = source.in_features, source.out_features
        self.weight = source.weight
        self.bias = None
        self.weight_exp = source.weight_exp
        self._init_delays(window, sigma)
        self.rounded.fill_(True)

    def integer_weight(self) -> torch.Tensor:
        return quantize_weight(self.weight)

    def transposed(self, *args, **kwargs):
        raise ValueError("a delayed synapse has no tied transpose")

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        spikes = spikes.to(torch.float64)
        spikes = spikes.flatten(2) if spikes.dim() > 3 else spikes
        kernel = self.integer_weight().to(torch.float64).unsqueeze(-1) * self.taps(rounded=True).to(torch.float64)
        # Lava shifts each step's sum per delay slot (a_accum) before it joins the buffer: a right shift
        # floors every slot's sum on its own, so the shift comes before the diagonal sum
        return diagonal_sum(shift_activation(per_delay_sums(spikes, kernel), self.weight_exp))


def delay_synapses(layer: nn.Module, window: int, sigma: float | None = None) -> nn.Module:
    """Give `layer` (a linear neuron layer with a `synapse`) learnable delays 0..window-1 on its feed-forward
    synapse; its weights are kept, its recurrent weight stays undelayed. Returns the layer."""
    from neuromem.models.dense_layers import DenseLinear
    from neuromem.neurons.layers import SpikingLinear
    from neuromem.neurons.loihi import LoihiLinear, QuantizedDense

    synapse = getattr(layer, "synapse", None)
    if isinstance(layer, LoihiLinear) and type(synapse) is QuantizedDense:
        layer.synapse = DelayedQuantizedDense(synapse, window, sigma)
    elif isinstance(layer, (SpikingLinear, DenseLinear)) and isinstance(synapse, nn.Linear) and not isinstance(
            synapse, _LearnableDelays):
        layer.synapse = DelayedLinear(synapse, window, sigma)
    else:
        raise ValueError(f"delays: {type(layer).__name__} has no linear synapse to delay "
                         "(delays apply to linear spiking, Loihi and dense layers)")
    return layer


def delayed_synapses(module: nn.Module) -> Iterator[_LearnableDelays]:
    for sub in module.modules():
        if isinstance(sub, _LearnableDelays):
            yield sub


def round_delays(module: nn.Module) -> int:
    """Round every delayed synapse in `module` to integer steps from now on (evaluation, export, further
    training straight through); returns how many synapses were rounded."""
    count = 0
    for synapse in delayed_synapses(module):
        synapse.rounded.fill_(True)
        count += 1
    return count


def set_delay_sigma(module: nn.Module, sigma: float) -> None:
    if not sigma > 0:
        raise ValueError(f"delay sigma must be > 0, got {sigma}")
    for synapse in delayed_synapses(module):
        synapse.sigma = float(sigma)


def anneal_delays(module: nn.Module, progress: float, final_sigma: float = FINAL_SIGMA) -> None:
    """The DCLS schedule, for a training loop to call (e.g. at each epoch's start with epoch / epochs): sigma
    falls exponentially from window / 2 at progress 0 to `final_sigma` at 1, where the delays are rounded."""
    progress = min(max(float(progress), 0.0), 1.0)
    for synapse in delayed_synapses(module):
        start = max(synapse.window / 2.0, final_sigma)
        synapse.sigma = math.exp((1 - progress) * math.log(start) + progress * math.log(final_sigma))
        if progress >= 1.0:
            synapse.rounded.fill_(True)
