"""Building blocks the spiking memory modules share: layers of the network's neuron model,
fixed lateral inhibition, and a layer whose synapse is the transpose of another's."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from neuromem.memory.base import MemoryOptions, check_positive_int
from neuromem.neurons.models import MemoryTuning, get_neuron, neuron_names
from neuromem.neurons.synapses import TiedTransposedLinear


def layer_kinds(neuron: str, neuron_params=()):
    """The front ends' layer factories for `neuron`, each layer given `neuron_params` ((field, value) pairs of the
    model's parameter record: the network's, `SpikingOptions.neuron_params`) (imported late: the models package
    imports memories)."""
    from neuromem.models.frontends import layer_kinds as kinds

    try:
        return kinds(neuron, **dict(neuron_params))
    except KeyError as error:
        raise ValueError(str(error.args[0])) from None


class TransposedLinear(TiedTransposedLinear):
    """The float form of a tied transposed synapse (see `TiedTransposedLinear`), on spikes or frames."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return F.linear(inputs.flatten(1) if inputs.dim() > 2 else inputs, self.weight, self.bias)


def tie_transposed(layer: nn.Module, source: nn.Module, rows: int | None = None) -> None:
    """Make `layer`'s synapse the transpose of `source`'s (Loihi synapses know their own transposed form).
    With `rows`, only the source's first `rows` outputs are tied; `layer`'s further inputs keep the weights
    `layer` was initialised with, as its own."""
    rows = source.synapse.weight.shape[0] if rows is None else int(rows)
    own = layer.synapse.weight.detach()[:, rows:]
    extra = own if own.shape[1] else None
    transposed = getattr(source.synapse, "transposed", None)
    if transposed is not None:
        layer.synapse = transposed(rows, extra)
    else:
        layer.synapse = TransposedLinear(source.synapse, rows, extra, bias=layer.synapse.bias is not None)


def init_for_rate(layer: nn.Module, input_rate: float, gain: float = 1.0) -> None:
    """Initialise `layer`'s feed-forward weights (uniform, zero mean) so that the per-step synaptic drive of
    inputs spiking at `input_rate` (fraction of the layer's inputs active per step) has standard deviation
    `gain` in the layer's weight units: std(w) = gain / sqrt(fan_in * input_rate). Drive then does not
    shrink with fan-in or input sparsity, so layers stacked on sparse spike trains do not start silent
    (at gain 1, about 10-20% of lif or loihi neurons fire per step, for any fan-in and input rate).
    Loihi weights stay within the 8-bit range (|w| < 1); a bias, if any, starts at 0."""
    synapse = layer.synapse
    fan_in = synapse.weight.shape[1]
    bound = min(1.0 - 1.0 / 128, gain * 3.0**0.5 / (fan_in * input_rate) ** 0.5)  # uniform(-b, b): std b/sqrt(3)
    with torch.no_grad():
        synapse.weight.uniform_(-bound, bound)
        if getattr(synapse, "bias", None) is not None:
            synapse.bias.zero_()


def lateral_inhibition(layer: nn.Module, strength: float, size: int | None = None) -> None:
    """Fix `layer`'s recurrent weight to -strength between different neurons among its first `size` (all by
    default), 0 onto themselves and to or from the others (not trained)."""
    recurrent = layer.recurrent
    weight = recurrent.weight if isinstance(recurrent, nn.Module) else recurrent
    total = weight.shape[0]
    size = total if size is None else int(size)
    block = torch.zeros(total, total, dtype=weight.dtype)
    block[:size, :size] = -strength * (1.0 - torch.eye(size, dtype=weight.dtype))
    with torch.no_grad():
        weight.copy_(block)
    weight.requires_grad_(False)


def set_surrogate_slope(layers, slope: float | None) -> None:
    """Give `layers`' neurons the surrogate slope `slope` (None: keep the model's). Backward pass only: the
    spikes, and so the exported network, do not change."""
    if slope is None:
        return
    for layer in layers:
        layer.parameters_ = dataclasses.replace(layer.parameters_, surrogate_slope=float(slope))


@dataclass(frozen=True)
class SpikingOptions(MemoryOptions):
    """The options every spiking memory takes (None: the neuron model's default, its registry entry's
    `memory_tuning`): its width `dim` (at least `MIN_DIM`), its neurons' surrogate slope (backward pass only),
    their firing-rate band for `rate_band_loss` (`rate_floor` in [0, 1), 0: none; `rate_ceiling` in
    (floor, 1], 1: none; spikes per neuron per step; `rate_weight` >= 0), and the network's neuron model and the
    fields of its parameter record every layer gets (`neuron_params`, e.g. (("reset", "zero"),): the cell's
    `--neuron-option`s; `build_network` sets both). A module builds its layers with
    `layer_kinds(o.neuron, o.neuron_params)`."""

    dim: int | None = None
    surrogate_slope: float | None = None
    rate_floor: float | None = None
    rate_ceiling: float | None = None
    rate_weight: float = 1.0
    neuron: str = "lif"
    neuron_params: tuple = ()

    MIN_DIM: ClassVar[int] = 1

    @property
    def tuning(self) -> MemoryTuning:
        """The neuron model's defaults for what is left unset; a layer kind that is no neuron model (the dense
        ReLU twin) takes the plain ones."""
        return get_neuron(self.neuron).memory_tuning if self.neuron in neuron_names() else MemoryTuning()

    @property
    def width(self) -> int:
        return self.tuning.width if self.dim is None else self.dim

    @property
    def slope(self) -> float | None:
        """The surrogate slope of the memory's neurons (None: the model's own)."""
        return self.tuning.surrogate_slope if self.surrogate_slope is None else self.surrogate_slope

    @property
    def rate_band(self) -> tuple[float, float, float]:
        """(floor, ceiling, weight), the defaults of the neuron model filled in."""
        default_floor, default_ceiling = self.tuning.rate_band
        floor = default_floor if self.rate_floor is None else self.rate_floor
        ceiling = default_ceiling if self.rate_ceiling is None else self.rate_ceiling
        return float(floor), float(ceiling), float(self.rate_weight)

    def check(self, memory: str) -> None:
        super().check(memory)
        check_positive_int(memory, self.MIN_DIM, dim=self.width)
        if self.surrogate_slope is not None and not float(self.surrogate_slope) > 0.0:
            raise ValueError(f"{memory} option surrogate_slope must be > 0, got {self.surrogate_slope}")
        floor, ceiling, weight = self.rate_band
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"{memory} option rate_floor must be in [0, 1), got {floor}")
        if not floor < ceiling <= 1.0:
            raise ValueError(f"{memory} option rate_ceiling must be in (rate_floor, 1], got {ceiling}")
        if not weight >= 0.0:
            raise ValueError(f"{memory} option rate_weight must be >= 0, got {weight}")


def check_init(memory: str, input_rate: float, gain: float) -> None:
    """The first layer's expected input rate in (0, 1] and the init gain > 0 (`init_for_rate`'s), else a ValueError."""
    if not 0.0 < float(input_rate) <= 1.0:
        raise ValueError(f"{memory} option input_rate must be in (0, 1], got {input_rate}")
    if not float(gain) > 0.0:
        raise ValueError(f"{memory} option gain must be > 0, got {gain}")


@dataclass(frozen=True)
class RateInitOptions(SpikingOptions):
    """A spiking memory whose layers start from `init_for_rate`: its first layer's expected input rate
    `input_rate` (in (0, 1]) and the init gain `gain` (> 0; None: the neuron model's `memory_tuning.init_gain`:
    0.3 on "loihi", 1 otherwise)."""

    input_rate: float = 0.3
    gain: float | None = None

    @property
    def init_gain(self) -> float:
        return self.tuning.init_gain if self.gain is None else self.gain

    def check(self, memory: str) -> None:
        super().check(memory)
        check_init(memory, self.input_rate, self.init_gain)


def rate_band_active(floor: float, ceiling: float, weight: float) -> bool:
    return weight > 0.0 and (floor > 0.0 or ceiling < 1.0)


def rate_band_loss(spike_trains, floor: float, ceiling: float, weight: float) -> torch.Tensor:
    """Training-only penalty on neurons firing outside [floor, ceiling] (spikes per step, over the batch's
    samples and steps): weight * mean over layers of mean over neurons of (1 - rate / floor)^2 below the floor
    plus ((rate - ceiling) / (1 - ceiling))^2 above the ceiling. A neuron that never fires, or fires at every
    step whatever the input, carries nothing about the sample and gets almost no gradient from the task; this
    pulls it back into its working range (through the surrogate). The spikes, and so an exported network, are
    unchanged."""
    terms = []
    for spikes in spike_trains:
        rates = spikes.flatten(0, 1).mean(0)  # (T, batch, N) -> (N,)
        term = torch.zeros_like(rates)
        if floor > 0.0:
            term = term + (1.0 - rates / floor).clamp(min=0.0) ** 2
        if ceiling < 1.0:
            term = term + ((rates - ceiling) / (1.0 - ceiling)).clamp(min=0.0) ** 2
        terms.append(term.mean())
    return weight * torch.stack(terms).mean()


def rate_band_penalty(layer_spikes, band: tuple[float, float, float], total: torch.Tensor) -> torch.Tensor:
    """`total` plus `rate_band_loss` of each modality's spike trains ({modality: [trains]}, collected in
    training only), added one modality after another."""
    for trains in layer_spikes.values():
        total = total + rate_band_loss(trains, *band)
    return total
