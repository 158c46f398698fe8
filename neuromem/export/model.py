"""A chain of Loihi layers (LoihiConv2d* -> LoihiLinear* -> LoihiReadout): what runs on the chip.

A cell the ablation grid trained with neuron "loihi" and a Loihi-exportable
memory is such a chain (front end, then the memory's `chip_layers`, then the
readout): `chip_network` reads it out of the cell's `MemoryNetwork`, weight for
weight, and the exporter writes it. Inputs are binary spikes (Lava's Dense and
Sparse take unary spikes): event counts per bin are clipped to 1. Decisions:
argmax of the final readout voltage.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from neuromem.errors import NeuromemError
from neuromem.neurons.delays import DelayedQuantizedDense, delay_synapses
from neuromem.neurons.loihi import LoihiConv2d, LoihiLinear, LoihiReadout

CHECKPOINT_KIND = "neuromem.loihi_network"


@dataclass
class LoihiNetworkConfig:
    input_size: int = 700
    hidden_sizes: tuple[int, ...] = (128, 128)
    recurrent: tuple[bool, ...] = (False, True)
    num_classes: int = 20
    hidden: dict = field(default_factory=lambda: {"du": 511, "dv": 256, "vth": 16384})
    readout: dict = field(default_factory=lambda: {"du": 4095, "dv": 16})
    logit_scale: float = 1.0 / (64 * 1024)  # readout voltage units -> logits for the loss
    # convolutions before the dense layers: input (C, H, W) and (out_channels, kernel, stride, padding) each
    input_shape: tuple[int, ...] = ()
    convs: tuple[tuple[int, int, int, int], ...] = ()
    # per hidden (dense) layer: the window D of its learnable feed-forward delays (0..D-1 steps), 0: none
    delays: tuple[int, ...] = ()
    # per layer before the readout (convolutions, then dense): its own neuron parameters where they differ from
    # `hidden` (e.g. hgrn-spiking's learned decays); (): every layer takes `hidden`
    layer_neurons: tuple[dict, ...] = ()

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(d) for d in self.input_shape) or (int(self.input_size),)
        self.convs = tuple(tuple(int(v) for v in c) for c in self.convs)
        if self.convs and len(self.input_shape) != 3:
            raise ValueError(f"convolutions need a (C, H, W) input_shape, got {self.input_shape}")
        if int(np.prod(self.input_shape)) != int(self.input_size):
            raise ValueError(f"input_size {self.input_size} is not the size of input_shape {self.input_shape}")
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        self.recurrent = tuple(bool(r) for r in self.recurrent)
        if len(self.recurrent) != len(self.hidden_sizes):
            raise ValueError(f"recurrent {self.recurrent} must have one flag per hidden layer {self.hidden_sizes}")
        self.delays = tuple(int(d) for d in self.delays) or (0,) * len(self.hidden_sizes)
        if len(self.delays) != len(self.hidden_sizes):
            raise ValueError(f"delays {self.delays} must have one window per hidden layer {self.hidden_sizes}")
        self.layer_neurons = tuple(dict(n) for n in self.layer_neurons)
        if self.layer_neurons and len(self.layer_neurons) != len(self.convs) + len(self.hidden_sizes):
            raise ValueError(f"layer_neurons must have one record per layer before the readout "
                             f"({len(self.convs) + len(self.hidden_sizes)}), got {len(self.layer_neurons)}")

    def neuron_of(self, index: int) -> dict:
        """The neuron parameters of layer `index` (convolutions first, then dense; not the readout)."""
        return {**self.hidden, **(self.layer_neurons[index] if self.layer_neurons else {})}


class LoihiNetwork(nn.Module):
    def __init__(self, config: LoihiNetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.convs = nn.ModuleList()
        shape = config.input_shape
        for index, (out_channels, kernel, stride, padding) in enumerate(config.convs):
            conv = LoihiConv2d(shape[0], out_channels, kernel, stride, padding, **config.neuron_of(index))
            side = lambda n: (n + 2 * padding - kernel) // stride + 1  # noqa: E731
            conv.in_shape, conv.out_hw = shape, (side(shape[1]), side(shape[2]))
            self.convs.append(conv)
            shape = (out_channels, *conv.out_hw)
        self.conv_shapes = [tuple(c.synapse.weight.shape) for c in self.convs]
        sizes = (int(np.prod(shape)), *config.hidden_sizes)
        self.hidden = nn.ModuleList(
            LoihiLinear(sizes[i], sizes[i + 1], recurrent=config.recurrent[i], **config.neuron_of(len(config.convs) + i))
            for i in range(len(config.hidden_sizes))
        )
        for layer, window in zip(self.hidden, config.delays):
            if window:
                delay_synapses(layer, window)
        self.readout = LoihiReadout(sizes[-1], config.num_classes, **config.readout)

    @property
    def layers(self) -> list[nn.Module]:
        return [*self.convs, *self.hidden, self.readout]

    def run(self, inputs: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """inputs (T, batch, *input_shape) -> (spikes of every layer incl. readout, readout voltages (T, batch, C));
        a convolution's spikes are (T, batch, C, H, W)."""
        x = (inputs > 0).to(torch.float64)
        spikes = []
        for layer in [*self.convs, *self.hidden]:
            x = layer(x)
            spikes.append(x)
        readout_spikes, voltages = self.readout.run(x)
        spikes.append(readout_spikes)
        return spikes, voltages

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits (batch, classes) from the final readout voltage."""
        _, voltages = self.run(inputs)
        return voltages[-1] * self.config.logit_scale

    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        return LoihiReadout.decide(self.run(inputs)[1])


def build_loihi_shd_model(
    hidden_sizes: Sequence[int] = (128, 128), input_size: int = 700, num_classes: int = 20, **overrides
) -> LoihiNetwork:
    """700 -> hidden -> recurrent hidden -> readout (the recurrent flag is set on the last hidden layer)."""
    recurrent = tuple(i == len(hidden_sizes) - 1 for i in range(len(hidden_sizes)))
    config = LoihiNetworkConfig(input_size, tuple(hidden_sizes), recurrent, num_classes, **overrides)
    return LoihiNetwork(config)


@dataclass
class TrainingResult:
    model: LoihiNetwork
    history: list[dict]
    test_accuracy: float | None
    seconds: float


def _time_major(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(0, 1)


def _batches(inputs: np.ndarray | torch.Tensor, labels, batch_size: int, generator: torch.Generator | None):
    inputs = torch.as_tensor(np.array(inputs)) if not isinstance(inputs, torch.Tensor) else inputs
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    order = torch.randperm(len(labels), generator=generator) if generator is not None else torch.arange(len(labels))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        yield inputs[rows].to(torch.float32), labels[rows]


@torch.no_grad()
def evaluate(model: LoihiNetwork, inputs, labels, batch_size: int = 64) -> tuple[float, np.ndarray]:
    """Accuracy and predictions (batch-major inputs (N, T, input_size))."""
    model.eval()
    predictions = []
    for x, _ in _batches(inputs, labels, batch_size, None):
        predictions.append(model.predict(_time_major(x)).numpy())
    predicted = np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)
    return float((predicted == np.asarray(labels)).mean()) if len(predicted) else 0.0, predicted


def train_loihi_model(
    train_inputs,
    train_labels,
    test_inputs=None,
    test_labels=None,
    *,
    model: LoihiNetwork | None = None,
    hidden_sizes: Sequence[int] = (128, 128),
    epochs: int = 5,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    rate_target: float | None = 0.05,
    rate_weight: float = 1.0,
    logit_scale: float | None = None,
    log=None,
) -> TrainingResult:
    """Train a Loihi-exact network with Adam on batch-major (N, T, input_size) spike counts.

    The loss is cross-entropy on the scaled final readout voltage plus (optionally)
    a penalty pulling each hidden layer's mean firing rate toward `rate_target`,
    which keeps the fixed-point layers out of silence and saturation.
    Same seed, same data -> same weights.
    """
    torch.manual_seed(seed)
    train_inputs = np.asarray(train_inputs)
    input_size = int(train_inputs.shape[-1])
    num_classes = int(max(np.max(train_labels), np.max(test_labels) if test_labels is not None else 0)) + 1
    if model is None:
        extra = {} if logit_scale is None else {"logit_scale": logit_scale}
        model = build_loihi_shd_model(hidden_sizes, input_size=input_size, num_classes=max(num_classes, 2), **extra)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history, started = [], time.perf_counter()
    for epoch in range(epochs):
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        for x, y in _batches(train_inputs, train_labels, batch_size, generator):
            spikes, voltages = model.run(_time_major(x))
            logits = voltages[-1] * model.config.logit_scale
            loss = nn.functional.cross_entropy(logits.float(), y)
            if rate_target is not None:
                for s in spikes[:-1]:
                    loss = loss + rate_weight * (s.mean() - rate_target).pow(2).float()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for layer in model.layers:  # keep weights in the representable range so clipping stays rare
                    layer.synapse.weight.clamp_(-1.0, 127 / 128)
                    if layer.recurrent is not None:
                        layer.recurrent.clamp_(-1.0, 127 / 128)
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(-1) == y).sum())
            total += len(y)
        entry = {"epoch": epoch + 1, "loss": loss_sum / total, "train_accuracy": correct / total}
        if test_inputs is not None:
            entry["test_accuracy"] = evaluate(model, test_inputs, test_labels)[0]
        history.append(entry)
        if log is not None:
            log(entry)
    test_accuracy = history[-1].get("test_accuracy") if history else None
    model.eval()
    return TrainingResult(model, history, test_accuracy, time.perf_counter() - started)


def save_checkpoint(model: LoihiNetwork, path: str | Path, extra: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"kind": CHECKPOINT_KIND, "config": asdict(model.config), "state_dict": model.state_dict(), **(extra or {})}, path)
    return path


def model_from_checkpoint_dict(checkpoint: dict, source: str) -> LoihiNetwork:
    try:
        config = LoihiNetworkConfig(**checkpoint["config"])
        model = LoihiNetwork(config)
        model.load_state_dict(checkpoint["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise NeuromemError(f"{source}: not a Loihi network checkpoint ({err}); train one with `train_loihi_model`") from None
    model.eval()
    return model


def load_checkpoint(path: str | Path) -> LoihiNetwork:
    path = Path(path)
    if not path.is_file():
        raise NeuromemError(f"checkpoint {path} does not exist")
    from neuromem.study.store import read_checkpoint_file

    checkpoint = read_checkpoint_file(path)
    if not isinstance(checkpoint, dict):
        raise NeuromemError(f"{path}: not a neuromem checkpoint (expected a dict with 'config' and 'state_dict')")
    return model_from_checkpoint_dict(checkpoint, str(path))


def binary_time_major(inputs: Iterable) -> torch.Tensor:
    """(N, T, ...) counts -> (T, N, ...) float64 binary spikes, as the network (and Lava) sees them."""
    x = torch.as_tensor(np.array(inputs))
    return (x > 0).to(torch.float64).transpose(0, 1)


def chip_network(network: nn.Module, modality: str, input_shape: Sequence[int]) -> LoihiNetwork:
    """The chain of Loihi layers one modality's signal passes in a trained `MemoryNetwork` (front end,
    the memory's `chip_layers`, the readout), as a `LoihiNetwork` holding the same weights.

    A NeuromemError names what is not a chip layer (a float memory, a non-Loihi neuron)."""
    from neuromem.neurons.loihi import LoihiSpikeReadout

    from neuromem.memory.base import memory_info

    front = network.front_ends[modality]
    readout = network.readouts[modality]
    if not memory_info(network.memory.name).loihi_exportable or not isinstance(readout, LoihiSpikeReadout):
        raise NeuromemError(f"memory '{network.memory.name}' is not a chain of Loihi layers")
    front_layers = [m for m in front.modules() if isinstance(m, (LoihiLinear, LoihiConv2d))]
    layers = [*front_layers, *network.memory.chip_layers(modality)]
    if not front_layers or not all(isinstance(l, (LoihiLinear, LoihiConv2d)) for l in layers):
        raise NeuromemError("the cell's layers are not all Loihi layers; train it with `neuromem ablate --neuron loihi`")
    convs = [l for l in layers if isinstance(l, LoihiConv2d)]
    dense = [l for l in layers if isinstance(l, LoihiLinear)]
    if layers[: len(convs)] != convs:
        raise NeuromemError("a convolution after a dense layer has no Loihi chain form here")
    fields = ("du", "dv", "vth", "bias_mant", "bias_exp", "weight_exp")
    # what the chip runs (the surrogate, training's backward pass only, is not kept); each layer's own record
    # where the layers differ (the netx file holds one per layer: e.g. hgrn-spiking's learned decays)
    per_layer = [{k: getattr(l.neuron, k) for k in fields} for l in layers]
    hidden_params = per_layer[0]
    layer_neurons = tuple(per_layer) if any(p != hidden_params for p in per_layer) else ()
    input_shape = tuple(int(d) for d in input_shape)
    config = LoihiNetworkConfig(
        input_size=int(np.prod(input_shape)),
        hidden_sizes=tuple(l.out_features for l in dense),
        recurrent=tuple(l.recurrent is not None for l in dense),
        num_classes=readout.out_features,
        hidden=hidden_params,
        readout={k: getattr(readout.neuron, k) for k in fields},
        logit_scale=float(readout.logit_scale),
        input_shape=input_shape,
        convs=tuple((c.synapse.out_channels, c.synapse.kernel_size[0], c.synapse.stride[0], c.synapse.padding[0])
                    for c in convs),
        delays=tuple(l.synapse.window if isinstance(l.synapse, DelayedQuantizedDense) else 0 for l in dense),
        layer_neurons=layer_neurons,
    )
    chain = LoihiNetwork(config)
    with torch.no_grad():
        for target, source in zip(chain.layers, [*layers, readout]):
            target.synapse.weight.copy_(source.synapse.weight.detach())
            if isinstance(source.synapse, DelayedQuantizedDense):
                target.synapse.set_delays(source.synapse.positions().detach())
            if source.recurrent is not None:
                target.recurrent.copy_(source.recurrent.detach())
            if isinstance(source, LoihiLinear):
                target.recurrent_exp = source.recurrent_exp
    chain.eval()
    return chain


def chip_network_from_cell(checkpoint: dict, source: str) -> tuple[LoihiNetwork, str, int | None]:
    """(chain, data set, time bins) of a grid cell's model.pt; a NeuromemError says why a cell has no chain."""
    network, dataset, shape, config = cell_network(checkpoint, source)
    return chip_network(network, dataset, shape), dataset, config.time_bins


@dataclass
class LoihiSenses:
    """A cell of several senses (joint, parallel) on Loihi: each sense's chain of Loihi layers (its front end, the
    memory's `chip_layers` for that sense, its readout). `shared`: one network whose memory every sense runs
    through alone (joint: the memory's layers are in every sense's chain with the same weights), else one network
    per sense (parallel). `concept_labels`: the readouts decide the shared concepts (labels mapped by `concept_of`)."""

    chains: dict[str, LoihiNetwork]
    shared: bool
    concept_labels: bool
    modality: str

    @property
    def senses(self) -> tuple[str, ...]:
        return tuple(self.chains)


def sense_networks(checkpoint: dict, source: str):
    """A cell of several senses as (CellConfig, Task, [(its data sets, its trained network in eval mode)]): one
    network for a joint cell, one per sense for a parallel one; None for a cell of one sense (or not a cell:
    `cell_network` names it). The walk both exports of such cells (Lava, NIR) take."""
    from neuromem.train.config import CellConfig
    from neuromem.train.tasks import TASKS

    try:
        config = CellConfig.from_dict(dict(checkpoint["config"]))
    except (KeyError, TypeError, ValueError):
        return None
    task = TASKS.get(config.modality)
    if task is None or len(task.datasets) == 1:
        return None
    groups = [list(task.datasets)] if task.shared_network else [[d] for d in task.datasets]
    states = checkpoint.get("state_dict") or {}
    return config, task, [(group, trained_network(config, states.get("+".join(group)), group, source)) for group in groups]


def chip_senses(checkpoint: dict, source: str) -> tuple[LoihiSenses, int | None] | None:
    """(each sense's Loihi chain, time bins) of a cell of several senses; None for a cell of one sense."""
    found = sense_networks(checkpoint, source)
    if found is None:
        return None
    config, task, networks = found
    chains = chains_per_sense(networks, source, chip_network)
    return LoihiSenses(chains, task.shared_network, task.concept_labels, config.modality), config.time_bins


def chains_per_sense(networks, source: str, make_chain) -> dict:
    """{sense: make_chain(its network, sense, the sense's input shape)} over `sense_networks`' networks; a chain
    that cannot be made is named with its sense."""
    from neuromem.data import get_spec

    chains = {}
    for group, network in networks:
        for sense in group:
            try:
                chains[sense] = make_chain(network, sense, tuple(get_spec(sense).input_shape))
            except NeuromemError as error:
                raise NeuromemError(f"{source}: {error} (sense {sense})") from None
    return chains


def cell_network(checkpoint: dict, source: str):
    """(trained network in eval mode, data set, input shape per step, CellConfig) of a one-data-set grid
    cell's model.pt, rebuilt as the trainer built it; a NeuromemError says why it cannot be."""
    from neuromem.data import get_spec
    from neuromem.train.config import CellConfig
    from neuromem.train.tasks import TASKS

    try:
        config = CellConfig.from_dict(dict(checkpoint["config"]))
    except (KeyError, TypeError, ValueError) as err:
        raise NeuromemError(f"{source}: not a neuromem cell checkpoint ({err})") from None
    task = TASKS.get(config.modality)
    if task is None or len(task.datasets) != 1:
        raise NeuromemError(f"{source}: a '{config.modality}' cell is not one sense's chain; "
                            "export cells of one data set (e.g. --modality shd or nmnist)")
    dataset = task.datasets[0]
    network = trained_network(config, checkpoint.get("state_dict", {}).get(dataset), [dataset], source)
    return network, dataset, tuple(get_spec(dataset).input_shape), config


def trained_network(config, state: dict | None, datasets: list[str], source: str):
    """One network of a cell (its data sets' front ends, the memory, their readouts) rebuilt as the trainer built
    it, its trained weights `state` loaded, in eval mode; a NeuromemError says why it cannot be."""
    from neuromem.data import get_spec
    from neuromem.models import build_network

    classes = {}
    for d in datasets:
        key = next((k for k in (f"readouts.{d}.synapse.weight", f"readouts.{d}.weight") if k in (state or {})), None)
        if key is None:
            raise NeuromemError(f"{source}: the checkpoint holds no trained '{d}' network")
        classes[d] = int(state[key].shape[0])
    # the front ends' keyword options (e.g. delays) build the same layers as in training
    network = build_network({d: tuple(get_spec(d).input_shape) for d in datasets}, classes, config.memory,
                            hidden=config.hidden, neuron=config.neuron, neuron_params=dict(config.neuron_options),
                            front_options=dict(config.front_options), memory_options=dict(config.memory_options))
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise NeuromemError(
            f"{source}: weights do not fit the cell's network as the current '{config.memory}' builds it (trained by "
            f"an older version? re-train it with `neuromem ablate ... --rerun stale`; {' '.join(str(err).split())[:120]})"
        ) from None
    return network.eval()
