"""A firing-rate ceiling for every spiking layer of a network, in training only (`neuromem ablate --rate-option`).

Each neuron layer of the front ends and of the memory (any module with a Linear/Conv `synapse`, the accounting's
neuron layers: `neuromem.accounting.counter`; the readouts, which decide the class, are left alone) has its
population rate measured over the batch's samples, steps and neurons (spikes per neuron per step). A layer firing
above `target` adds

    weight * ((rate - target) / target) ** 2

to the loss, averaged over the layers (at twice the target a layer costs `weight`): the upper-bound rate
penalty of the SHD literature (Zenke & Vogels 2021; Cramer et al. 2022), through the neurons' surrogate
gradients. It applies to whatever neuron model the layers run (lif, loihi, ...) and whatever memory; it changes
what is learned, never the forward pass, so an exported network is the trained one. Unset (the default) it adds
nothing and a cell's id does not change; set, its options are part of the cell's identity (`CellConfig.rate_options`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from neuromem.accounting.operations import CONNECTION_TYPES


@dataclass(frozen=True)
class RateOptions:
    """`target`: the rate above which a layer is penalised, spikes per neuron per step, in (0, 1); `weight` >= 0
    (0: off)."""

    target: float = 0.02
    weight: float = 1.0

    @classmethod
    def from_items(cls, items: Iterable[tuple[str, Any]] | Mapping[str, Any]) -> "RateOptions":
        """The options of `items` ((key, value) pairs), checked; a ValueError in one line naming the key or value
        and what is valid."""
        given = dict(items)
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(given) - set(valid))
        if unknown:
            raise ValueError(f"unknown key {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
        try:
            options = cls(**{key: float(value) for key, value in given.items()})
        except (TypeError, ValueError):
            raise ValueError(f"values must be numbers, got {given}") from None
        if not 0.0 < options.target < 1.0:
            raise ValueError(f"target must be in (0, 1) spikes per neuron per step, got {options.target:g}")
        if not 0.0 <= options.weight < float("inf"):
            raise ValueError(f"weight must be a finite number >= 0, got {options.weight:g}")
        return options

    @property
    def active(self) -> bool:
        return self.weight > 0.0


def spiking_layers(network: nn.Module) -> list[tuple[str, nn.Module]]:
    """The neuron layers the penalty covers: those of the network's front ends and memory (the whole module when
    it has neither, e.g. a bare layer in a test), by name."""
    parts = [(name, getattr(network, name)) for name in ("front_ends", "memory") if hasattr(network, name)]
    roots = parts or [("", network)]
    return [(f"{root}.{name}".strip("."), module) for root, part in roots for name, module in part.named_modules()
            if isinstance(getattr(module, "synapse", None), CONNECTION_TYPES)]


class RateRecorder:
    """Forward hooks summing each covered layer's outputs while it is open (with their graph, for the gradient):

        with RateRecorder(network) as rates:
            output = network(inputs)
        loss = loss + rates.penalty(options)
    """

    def __init__(self, network: nn.Module) -> None:
        self.layers = spiking_layers(network)
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self._handles: list = []

    def __enter__(self) -> "RateRecorder":
        for name, module in self.layers:
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def hook(module, args, output):
            spikes = output[0] if isinstance(output, tuple) else output
            if not isinstance(spikes, torch.Tensor):
                return
            total = spikes.float().sum()
            self.sums[name] = self.sums[name] + total if name in self.sums else total
            self.counts[name] = self.counts.get(name, 0) + spikes.numel()

        return hook

    def rates(self) -> dict[str, torch.Tensor]:
        """Each layer's mean output per neuron per step over what it saw (a tensor carrying the gradient)."""
        return {name: self.sums[name] / max(1, self.counts[name]) for name in self.sums}

    def penalty(self, options: RateOptions) -> torch.Tensor:
        rates = list(self.rates().values())
        if not options.active or not rates:
            return torch.zeros(())
        excess = [((rate - options.target) / options.target).clamp(min=0.0) ** 2 for rate in rates]
        return options.weight * torch.stack(excess).mean()


def with_rate_options(configs: list, axes: Mapping[str, list[Any]], flag: str = "--rate-option") -> list:
    """Each configuration once per combination of the rate options' axes ({key: [values]}, `parse_option_axes`),
    each combination checked first (a NeuromemError in one line naming `flag`, the value and what is valid);
    no axes: the configurations unchanged (no penalty, ids as before)."""
    from dataclasses import replace

    from neuromem.errors import NeuromemError
    from neuromem.train.sweep import option_combinations

    if not axes:
        return list(configs)
    combinations = option_combinations(dict(axes))
    for combination in combinations:
        try:
            RateOptions.from_items(combination)
        except ValueError as error:
            raise NeuromemError(f"{flag} {combination}: {error}") from None
    return [replace(config, rate_options=tuple(sorted(combination.items())))
            for config in configs for combination in combinations]
