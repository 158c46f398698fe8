"""The benchmark networks, built the idiomatic way in each framework.

Every configuration is the same graph in neuromem, snnTorch and Norse (same
layer sizes, neuron counts, time steps, batch, loss); each framework runs it
the way its own tutorials do:
- neuromem: whole-sequence layers (`SpikingLinear`, `SpikingConv2d`: synapse
  over all T*batch at once, then the neuron sequence function).
- snnTorch: a Python loop over time steps calling `nn.Linear`/`nn.Conv2d` and
  `snn.Leaky` / `snn.RLeaky` per step (the snnTorch tutorial pattern).
- Norse: `SequentialState` of whole-sequence modules (`LIF`, `LIFRecurrent`,
  `LI`; convolutions through `Lift`). Norse's LIF carries a synaptic current
  (its default neuron model), decay 1 - dt*tau_mem_inv = 0.9 like beta = 0.9.

The readout is a non-spiking leaky integrator; logits are its membrane
averaged over time; loss is cross-entropy. Configurations with a memory module
put neuromem's module (the same for all three) between the front end's spikes
and a linear readout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from neuromem.neurons.functional.lif import leaky_integrator_sequence
from neuromem.neurons.layers import SpikingConv2d, SpikingLinear
from neuromem.neurons.synapses import SparseInputLinear

FRAMEWORKS = ("neuromem", "snntorch", "norse")
BETA = 0.9


@dataclass(frozen=True)
class BenchConfig:
    name: str
    kind: str  # the registered data set the data time and `data` inputs come from
    steps: int
    batch: int
    input_shape: tuple[int, ...]
    classes: int
    hidden: int = 256
    recurrent: bool = False
    density: float = 0.02  # fraction of non-zero input entries
    memory: str | None = None
    memory_options: dict = field(default_factory=dict)

    @property
    def frames(self) -> bool:
        """(channels, height, width) input: the convolutional front end; else (features,): dense."""
        return len(self.input_shape) == 3

    def scaled(self, steps: int, batch: int) -> "BenchConfig":
        return BenchConfig(
            self.name, self.kind, steps, batch, self.input_shape, self.classes, self.hidden,
            self.recurrent, self.density, self.memory, self.memory_options,
        )


def shd_config(recurrent: bool = False, memory: str | None = None) -> BenchConfig:
    name = "shd-recurrent" if recurrent else "shd-feedforward"
    if memory is not None:
        name = f"shd-memory-{memory}"
    return BenchConfig(name, "shd", 100, 64, (700,), 20, recurrent=recurrent, memory=memory)


def nmnist_config() -> BenchConfig:
    # density: N-MNIST saccades give ~4-6% of 2x34x34 pixels an event in a 10 ms bin
    return BenchConfig("nmnist-conv", "nmnist", 30, 64, (2, 34, 34), 10, density=0.05)


def quick_config_for_tests(config: BenchConfig) -> BenchConfig:
    """Tiny shapes (T <= 8, batch <= 4) for smoke runs."""
    return config.scaled(steps=min(config.steps, 8), batch=min(config.batch, 4))


# ----------------------------------------------------------------- neuromem


class _LeakyReadout(nn.Module):
    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.linear = SparseInputLinear(features, classes)  # neuromem's linear synapse (spike input)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        steps, batch = spikes.shape[:2]
        currents = self.linear(spikes.reshape(steps * batch, -1)).reshape(steps, batch, -1)
        return leaky_integrator_sequence(currents, BETA).mean(0)


class _MemoryReadout(nn.Module):
    """Front-end spikes (T, B, D) -> memory module -> linear readout (B, classes)."""

    def __init__(self, config: BenchConfig, features: int) -> None:
        super().__init__()
        from neuromem.memory import build_memory

        self.memory = build_memory(config.memory, {config.kind: features}, **config.memory_options)
        self.linear = nn.Linear(self.memory.output_size, config.classes)
        self.modality = config.kind
        self.last_output = None  # the memory's output, for its auxiliary loss

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        self.last_output = self.memory({self.modality: spikes})
        return self.linear(self.last_output.representations[self.modality])

    def auxiliary_loss(self, labels: torch.Tensor) -> torch.Tensor:
        return self.memory.auxiliary_loss(self.last_output, labels)


def _head(config: BenchConfig, features: int) -> nn.Module:
    return _MemoryReadout(config, features) if config.memory else _LeakyReadout(features, config.classes)


class NeuromemNet(nn.Module):
    def __init__(self, config: BenchConfig) -> None:
        super().__init__()
        if not config.frames:
            self.front = nn.Sequential(
                SpikingLinear(config.input_shape[0], config.hidden, recurrent=config.recurrent, beta=BETA)
            )
        else:
            channels = config.input_shape[0]
            self.front = nn.Sequential(  # the linear layer flattens the conv frames itself
                SpikingConv2d(channels, 16, 5, stride=2, padding=2, beta=BETA),
                SpikingConv2d(16, 32, 3, stride=2, padding=1, beta=BETA),
                SpikingLinear(_conv_features(config), config.hidden, beta=BETA),
            )
        self.head = _head(config, config.hidden)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.front(inputs))


def _convs(channels: int) -> tuple[nn.Conv2d, nn.Conv2d]:
    return nn.Conv2d(channels, 16, 5, stride=2, padding=2), nn.Conv2d(16, 32, 3, stride=2, padding=1)


def _conv_features(config: BenchConfig) -> int:
    first, second = _convs(config.input_shape[0])
    with torch.no_grad():
        return second(first(torch.zeros(1, *config.input_shape))).numel()


# ----------------------------------------------------------------- snnTorch


class SnntorchNet(nn.Module):
    """The snnTorch tutorial pattern: per-step synapse + neuron calls in a Python loop."""

    def __init__(self, config: BenchConfig) -> None:
        super().__init__()
        import snntorch as snn

        self.config = config
        if not config.frames:
            self.fc = nn.Linear(config.input_shape[0], config.hidden)
            if config.recurrent:
                self.lif = snn.RLeaky(beta=BETA, linear_features=config.hidden)
            else:
                self.lif = snn.Leaky(beta=BETA)
        else:
            self.conv1, self.conv2 = _convs(config.input_shape[0])
            self.lif1, self.lif2 = snn.Leaky(beta=BETA), snn.Leaky(beta=BETA)
            self.fc = nn.Linear(_conv_features(config), config.hidden)
            self.lif = snn.Leaky(beta=BETA)
        if config.memory:
            self.head = _MemoryReadout(config, config.hidden)
        else:
            self.readout_fc = nn.Linear(config.hidden, config.classes)
            self.readout = snn.Leaky(beta=BETA, reset_mechanism="none")

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        config = self.config
        if config.recurrent:
            spk, mem = self.lif.init_rleaky()
        else:
            mem = self.lif.init_leaky()
        if config.frames:
            mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        if not config.memory:
            mem_out = self.readout.init_leaky()
        hidden_spikes, readout = [], []
        for x in inputs:
            if config.frames:
                spk1, mem1 = self.lif1(self.conv1(x), mem1)
                spk2, mem2 = self.lif2(self.conv2(spk1), mem2)
                x = spk2.flatten(1)
            if config.recurrent:
                spk, mem = self.lif(self.fc(x), spk, mem)
            else:
                spk, mem = self.lif(self.fc(x), mem)
            if config.memory:
                hidden_spikes.append(spk)
            else:
                _, mem_out = self.readout(self.readout_fc(spk), mem_out)
                readout.append(mem_out)
        if config.memory:
            return self.head(torch.stack(hidden_spikes))
        return torch.stack(readout).mean(0)


# ----------------------------------------------------------------- Norse


class NorseNet(nn.Module):
    def __init__(self, config: BenchConfig) -> None:
        super().__init__()
        import norse.torch as norse

        self.config = config
        if not config.frames:
            if config.recurrent:
                layers = [norse.LIFRecurrent(config.input_shape[0], config.hidden)]
            else:
                layers = [nn.Linear(config.input_shape[0], config.hidden), norse.LIF()]
        else:
            conv1, conv2 = _convs(config.input_shape[0])
            layers = [
                norse.Lift(conv1), norse.LIF(),
                norse.Lift(conv2), norse.LIF(),
                nn.Flatten(start_dim=2),  # (T, B, C, H, W) -> (T, B, C*H*W)
                nn.Linear(_conv_features(config), config.hidden), norse.LIF(),
            ]
        self.front = norse.SequentialState(*layers)
        if config.memory:
            self.head = _MemoryReadout(config, config.hidden)
            self.readout = None
        else:
            self.head = None
            self.readout = norse.SequentialState(nn.Linear(config.hidden, config.classes), norse.LI())

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        spikes, _ = self.front(inputs)
        if self.head is not None:
            return self.head(spikes)
        membranes, _ = self.readout(spikes)
        return membranes.mean(0)


BUILDERS: dict[str, Callable[[BenchConfig], nn.Module]] = {
    "neuromem": NeuromemNet,
    "snntorch": SnntorchNet,
    "norse": NorseNet,
}


def build_network(framework: str, config: BenchConfig, seed: int = 0) -> nn.Module:
    """framework: one of FRAMEWORKS, or "neuromem-reference" (same network; the step-by-step core is
    chosen at run time with `reference_core()`)."""
    torch.manual_seed(seed)
    return BUILDERS[framework.removesuffix("-reference")](config)


def auxiliary_loss(network: nn.Module, labels: torch.Tensor) -> torch.Tensor | None:
    """The memory module's own objective for the last forward pass, if the network has one."""
    head = getattr(network, "head", None)
    return head.auxiliary_loss(labels) if isinstance(head, _MemoryReadout) else None
