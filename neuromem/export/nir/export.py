"""neuromem cells to NIR graphs: one exporter for every chain of spiking layers.

A chain is what one sense's signal passes in a trained cell: the front end's spiking layers, the
memory's layers (`chip_layers`: the spiking memories hopfield-spiking and scl-spiking), and the readout.
Cells of the Loihi neuron are exported as their Loihi chain (`export.model.chip_network`), others as a
`SpikingChain` of their own layers (`spiking_chain`). Layer i's nodes are named layer{i}.*:

- its synapse, from a type -> node table (`SYNAPSES`, after Norse's `export_nir.py`): a dense synapse is
  `nir.Affine` (`nir.Linear` without bias; a tied transposed one, hopfield-spiking's retrieval, as the
  matrix it applies), a convolution `nir.Conv2d` (with its input shape), a Loihi synapse its integer
  weights times 2**weight_exp; `nir.Flatten` (NIR's batch-free dims: start_dim 0 of (C, H, W)) before
  the first dense layer after convolutions;
- its neurons, from their model's registry entry (`neuromem.neurons.models`, `to_nir`: lif, cuba, alif
  without adaptation, loihi), shaped like the synapse's output; a model NIR cannot express is refused in
  one line naming what it lacks;
- a recurrent weight (an SHD front end's second layer, hopfield-spiking's lateral inhibition) as a
  `nir.Linear` from the neurons back to themselves.

The readout: a Loihi chain's is a Loihi neuron layer that never fires (the decision is the argmax of its
final voltage). A float cell's readout is a linear layer on the memory's firing rate over the T steps;
it is written as its `nir.Affine` into a `nir.IF` with r = 1/dt and a threshold it never reaches (the
largest float32): an integrator
whose final voltage sum_t (W s_t + b) is T times the cell's logits, so its argmax is the cell's decision.

A cell of two senses (`--modality joint`: each sense's front end, one shared memory, a readout per sense;
`parallel`: one network per sense) is a `SenseChains`, one `SpikingChain` per sense, and one graph with an
Input per sense (named by the sense) and an Output per sense (`<sense>.output`): each sense's path is its
chain's nodes, named `<sense>.layer{i}.*`. The senses never mix (each runs through the memory alone, as the
cell runs them), and NIR has no weight sharing between paths, so a shared memory's nodes are written once per
sense path with the same weights (the metadata names them). `sense_graph(graph, sense)` takes one sense's path
out as a one-input graph (what `--compare` runs in every simulator).

The graph's metadata ({"neuromem": JSON}) records the data set and time bins it was trained on, dt, the
decision rule and the caveats: what the graph does not say that the cell does (a subtract reset,
Loihi's rounding and delays). Learned synaptic delays and float memories (softmax retrieval, gates,
test-time writes) have no NIR form here and are refused, each in one line naming the operation and the
spiking memories that export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from neuromem.errors import NeuromemError
from neuromem.neurons.models import nir_node_of
from neuromem.neurons.models.nir_forms import METADATA_KEY, with_metadata

NIR_DT = 1e-4  # snnTorch's NIR export/import convention


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().double().cpu().numpy()


# ------------------------------------------------------------------ synapses: a type -> node table


def _dense(synapse: nn.Linear, in_shape: tuple[int, ...]):
    import nir

    weight = _numpy(synapse.weight)
    if synapse.bias is None:
        return nir.Linear(weight=weight)
    return nir.Affine(weight=weight, bias=_numpy(synapse.bias))


def _conv(synapse: nn.Conv2d, in_shape: tuple[int, ...], weight: np.ndarray | None = None,
          bias: np.ndarray | None = None):
    import nir

    if synapse.groups != 1 or tuple(synapse.dilation) != (1, 1) or isinstance(synapse.padding, str):
        raise NeuromemError(f"NIR export refused: a convolution with groups {synapse.groups}, dilation "
                            f"{tuple(synapse.dilation)} or padding {synapse.padding!r} is not written here")
    weight = _numpy(synapse.weight) if weight is None else weight
    if bias is None:
        bias = _numpy(synapse.bias) if synapse.bias is not None else np.zeros(weight.shape[0])
    return nir.Conv2d(input_shape=tuple(int(d) for d in in_shape[1:]), weight=weight,
                      stride=tuple(int(s) for s in synapse.stride), padding=tuple(int(p) for p in synapse.padding),
                      dilation=1, groups=1, bias=bias)


def _loihi_dense(synapse, in_shape: tuple[int, ...]):
    import nir

    return nir.Linear(weight=_numpy(synapse.integer_weight()) * 2.0 ** synapse.weight_exp)


def _loihi_conv(synapse, in_shape: tuple[int, ...]):
    return _conv(synapse, in_shape, weight=_numpy(synapse.integer_weight()) * 2.0 ** synapse.weight_exp,
                 bias=np.zeros(synapse.out_channels))


def _synapse_table() -> dict[type, Callable]:
    """Synapse module type -> its NIR node (the first entry along the module's type's MRO applies)."""
    from neuromem.neurons.loihi import QuantizedConv2d, QuantizedDense, TransposedQuantizedDense

    return {
        QuantizedDense: _loihi_dense,
        TransposedQuantizedDense: _loihi_dense,
        QuantizedConv2d: _loihi_conv,
        nn.Conv2d: _conv,  # SparseInputConv2d
        nn.Linear: _dense,  # SparseInputLinear, TransposedLinear (its weight is the transpose it applies), readouts
    }


SYNAPSES = _synapse_table()


def synapse_node(synapse: nn.Module, in_shape: tuple[int, ...], where: str):
    if getattr(synapse, "temporal", False):
        window = getattr(synapse, "window", "?")
        raise NeuromemError(
            f"NIR export refused: {where} has learned synaptic delays (up to {window - 1 if isinstance(window, int) else window} "
            "steps) and NIR 1.0 has no delay node, so the graph would drop them; export with `--to lava` (Lava's "
            "DelaySparse runs the delays bit-exact)")
    for cls in type(synapse).__mro__:
        if cls in SYNAPSES:
            return SYNAPSES[cls](synapse, in_shape)
    raise NeuromemError(f"NIR export refused: {where}'s synapse {type(synapse).__name__} has no NIR node here; "
                        f"known: {', '.join(c.__name__ for c in SYNAPSES)}")


def _recurrent_weight(layer) -> tuple[np.ndarray, dict]:
    """A layer's recurrent weight as its neurons receive it, and layer options its NIR neuron node records."""
    from neuromem.neurons.functional.loihi import quantize_weight
    from neuromem.neurons.loihi import LoihiLinear

    if isinstance(layer, LoihiLinear):
        weight = _numpy(quantize_weight(layer.recurrent)) * 2.0 ** layer.recurrent_exp
        return weight, {"recurrent_exp": int(layer.recurrent_exp)}
    return _numpy(layer.recurrent), {}


# ------------------------------------------------------------------ the chain of a float cell


@dataclass
class SpikingChain:
    """One sense's chain of spiking layers in a trained float cell (front end, the memory's layers) and its
    readout (a linear layer on the last layer's firing rate), with the network they belong to."""

    layers: list[nn.Module]
    readout: nn.Linear
    input_shape: tuple[int, ...]
    dataset: str | None = None
    network: nn.Module | None = None
    config: Any = None  # the cell's CellConfig, when read from a cell
    memory_from: int | None = None  # index of the first of the memory's layers in `layers`

    @torch.no_grad()
    def run(self, inputs: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Time-major inputs (T, batch, *input_shape) -> (spikes of every layer (T, batch, ...), the readout's
        integrated voltage (T, batch, classes): the running sum of W s_t + b, T times the logits at the end)."""
        x = inputs.float()
        spikes = []
        for layer in self.layers:
            x = layer(x)
            spikes.append(x)
        return spikes, torch.cumsum(self.readout(x.flatten(2)), dim=0)

    def describe(self) -> list[str]:
        """Its layers and what its NIR graph does not say, as `neuromem export` reports them."""
        widths = []
        for layer in self.layers:
            synapse = layer.synapse
            width = synapse.out_channels if isinstance(synapse, nn.Conv2d) else synapse.out_features
            kind = "conv " if isinstance(synapse, nn.Conv2d) else ""
            widths.append(f"{kind}{width}{'r' if getattr(layer, 'recurrent', None) is not None else ''} "
                          f"({type(layer.parameters_).__name__.removesuffix('Parameters').lower()})")
        shape = "x".join(map(str, self.input_shape))
        lines = [f"  {shape} -> {' -> '.join(widths)} -> readout {self.readout.out_features}; r = recurrent"]
        return lines + [f"  the graph does not say: {caveat}" for caveat in caveats_of(self)]

    @torch.no_grad()
    def decisions(self, inputs: torch.Tensor) -> torch.Tensor:
        """The cell's own decisions (its network's logits) on time-major inputs."""
        if self.network is None:
            return self.run(inputs)[1][-1].argmax(-1)
        self.network.eval()
        self.network.memory.reset_memory()
        output = self.network({self.dataset: inputs.float().transpose(0, 1)})
        return output.logits[self.dataset].argmax(-1)


def spiking_chain(network: nn.Module, dataset: str, input_shape) -> SpikingChain:
    """The chain of one data set's signal in a float `MemoryNetwork`; a NeuromemError names what has no NIR form."""
    from neuromem.memory.base import loihi_memory_names, memory_info
    from neuromem.neurons.layers import SpikingLayer

    name = network.memory.name
    if not memory_info(name).loihi_exportable:
        spiking = loihi_memory_names()
        raise NeuromemError(
            f"NIR export refused: memory '{name}' has no NIR form: {memory_info(name).loihi_reason}; the spiking "
            f"memories export: {', '.join(spiking)} (`neuromem ablate --memory {spiking[0] if spiking else '...'}`)")
    front = network.front_ends[dataset]
    front_layers = [m for m in front.modules() if isinstance(m, SpikingLayer)]
    if not front_layers:
        raise NeuromemError("NIR export refused: the cell's front end has no spiking layers (a --dense ReLU twin has "
                            "no neurons for NIR); export a spiking cell")
    readout = network.readouts[dataset]
    if type(readout) is not nn.Linear:
        raise NeuromemError(f"NIR export refused: the cell's readout {type(readout).__name__} is not a linear layer "
                            "on firing rates")
    layers = [*front_layers, *network.memory.chip_layers(dataset)]
    if not all(isinstance(layer, SpikingLayer) for layer in layers):
        raise NeuromemError("NIR export refused: the memory's layers are not all spiking layers")
    return SpikingChain(layers, readout, tuple(int(d) for d in input_shape), dataset, network,
                        memory_from=len(front_layers))


@dataclass
class SenseChains:
    """A cell of several senses: each sense's chain (its front end, the memory's layers for that sense, its
    readout). `shared`: one network whose memory every sense runs through alone (joint), else one network per
    sense (parallel). Its graph has one Input and one Output per sense (`build_graph`)."""

    chains: dict[str, SpikingChain]
    shared: bool
    config: Any = None
    concept_labels: bool = True  # the readouts decide concepts (a sense's labels mapped by `concept_of`)

    @property
    def senses(self) -> tuple[str, ...]:
        return tuple(self.chains)

    def describe(self) -> list[str]:
        how = ("one shared memory, its nodes written once per sense path (same weights)" if self.shared else
               "one network per sense")
        lines = [f"  {len(self.chains)} senses, one Input and one Output each ({how}):"]
        for sense, chain in self.chains.items():
            first, *rest = chain.describe()
            lines += [f"  {sense}: {first.strip()}", *rest]
        return list(dict.fromkeys(lines))  # a caveat of every sense once


def _chain_parts(model) -> tuple[tuple[int, ...], list[nn.Module], nn.Module]:
    """(input shape, hidden layers, readout) of a LoihiNetwork or a SpikingChain."""
    from neuromem.export.model import LoihiNetwork

    if isinstance(model, LoihiNetwork):
        return tuple(model.config.input_shape), [*model.convs, *model.hidden], model.readout
    if isinstance(model, SpikingChain):
        return model.input_shape, list(model.layers), model.readout
    raise NeuromemError(f"NIR export takes a cell's chain (a LoihiNetwork or a SpikingChain), got {type(model).__name__}")


# a readout's threshold: never reached (the largest float32, so that a float32 simulator reads it finite and
# 0 * threshold stays 0 where a reset multiplies by it)
NEVER = float(np.finfo(np.float32).max)


def _readout_node(readout: nn.Linear, dt: float):
    """The float readout's integrator: IF with r = 1/dt (v_t = v_{t-1} + x_t) that never fires."""
    import nir

    classes = (readout.out_features,)
    return with_metadata(nir.IF(r=np.full(classes, 1.0 / dt), v_threshold=np.full(classes, NEVER),
                                v_reset=np.zeros(classes)), role="readout", decision="argmax of the final voltage")


@dataclass
class Written:
    graph: Any
    caveats: list[str] = field(default_factory=list)


def build_graph(model, dt: float = NIR_DT, **metadata) -> Written:
    """The NIR graph of a chain (see the module doc) and what it does not say."""
    import nir

    if isinstance(model, SenseChains):
        return _senses_graph(model, dt, **metadata)
    input_shape, layers, readout = _chain_parts(model)
    nodes = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
    edges: list[tuple[str, str]] = []
    previous, shape, caveats = "input", tuple(input_shape), []

    def append(name: str, node) -> None:
        nonlocal previous
        nodes[name] = node
        edges.append((previous, name))
        previous = name

    for index, layer in enumerate([*layers, readout]):
        where = f"layer {index}"
        synapse = layer.synapse if hasattr(layer, "synapse") else layer
        if isinstance(synapse, nn.Conv2d):
            if len(shape) != 3:
                raise NeuromemError(f"NIR export refused: {where} is a convolution on inputs of shape {shape}")
            append(f"layer{index}.conv", synapse_node(synapse, shape, where))
            with torch.no_grad():
                out = tuple(int(d) for d in synapse(torch.zeros(1, *shape)).shape[1:])
        else:
            if len(shape) > 1:
                append("flatten" if "flatten" not in nodes else f"layer{index}.flatten",
                       nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1))
                shape = (int(np.prod(shape)),)
            append(f"layer{index}.linear", synapse_node(synapse, shape, where))
            out = (int(synapse.out_features),)
        neuron = f"layer{index}.lif"
        if layer is readout and not hasattr(layer, "synapse"):
            append(neuron, _readout_node(readout, dt))
        else:
            try:
                node, caveat = nir_node_of(layer.parameters_, out, dt)
            except NeuromemError as error:
                raise NeuromemError(f"{error} ({where})") from None
            if caveat and caveat not in caveats:
                caveats.append(caveat)
            append(neuron, node)
            if getattr(layer, "recurrent", None) is not None:
                weight, options = _recurrent_weight(layer)
                if options:
                    with_metadata(node, layer=options)
                rec = f"layer{index}.w_rec"
                nodes[rec] = nir.Linear(weight=weight)
                edges += [(neuron, rec), (rec, neuron)]
        shape = out
    append("output", nir.Output(output_type={"output": np.array(shape)}))
    record = {"dt": dt, "decision": f"argmax of {previous_neuron(edges)}'s final voltage", "caveats": caveats,
              **{k: v for k, v in metadata.items() if v is not None}}
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={METADATA_KEY: json.dumps(record, default=str)})
    return Written(graph, caveats)


def previous_neuron(edges: list[tuple[str, str]]) -> str:
    return next(source for source, target in edges if target == "output")


def _sense_name(sense: str, name: str) -> str:
    """A one-sense graph's node name in the graph of several senses: its Input is the sense, the rest prefixed."""
    return sense if name == "input" else f"{sense}.{name}"


def _senses_graph(model: SenseChains, dt: float, **metadata) -> Written:
    """One graph of every sense's chain, side by side (see the module doc)."""
    import nir

    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    caveats: list[str] = []
    senses: dict[str, dict] = {}
    for sense, chain in model.chains.items():
        written = build_graph(chain, dt, dataset=sense)
        nodes.update({_sense_name(sense, k): v for k, v in written.graph.nodes.items()})
        edges += [(_sense_name(sense, a), _sense_name(sense, b)) for a, b in written.graph.edges]
        record = json.loads(written.graph.metadata[METADATA_KEY])
        record.pop("dt", None)
        record["decision"] = f"argmax of {_sense_name(sense, previous_neuron(written.graph.edges))}'s final voltage"
        if chain.memory_from is not None:
            record["memory_layers"] = [f"{sense}.layer{i}" for i in range(chain.memory_from, len(chain.layers))]
        senses[sense] = record
        caveats += [c for c in written.caveats if c not in caveats]
    # the layers written once per sense path: the same module in several senses' chains (the shared memory's)
    shared: dict[int, list[str]] = {}
    for sense, chain in model.chains.items():
        for index, layer in enumerate(chain.layers):
            shared.setdefault(id(layer), []).append(f"{sense}.layer{index}")
    record = {"dt": dt, "senses": senses, "caveats": caveats,
              "same_weights": [names for names in shared.values() if len(names) > 1],
              "paths": ("each sense's Input -> its front end -> the shared memory's layers (written once per sense "
                        "path, the same weights: NIR has no weight sharing, and the senses never mix) -> its readout"
                        if model.shared else "each sense's Input -> its own network -> its readout"),
              **{k: v for k, v in metadata.items() if v is not None}}
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={METADATA_KEY: json.dumps(record, default=str)})
    return Written(graph, caveats)


def graph_senses(graph) -> list[str]:
    """The senses of a graph neuromem wrote for a cell of several senses ([] for any other graph)."""
    try:
        record = json.loads((graph.metadata or {}).get(METADATA_KEY) or "{}")
    except (TypeError, ValueError):
        return []
    senses = record.get("senses") if isinstance(record, dict) else None
    return list(senses) if isinstance(senses, dict) else []


def sense_graph(graph, sense: str):
    """One sense's path of a graph of several senses, as the one-input graph of that sense's chain (its nodes'
    names without the sense's prefix, its Input `input`, its Output `output`, the sense's record as metadata)."""
    import nir

    senses = graph_senses(graph)
    if sense not in senses:
        raise NeuromemError(f"the NIR graph has no sense {sense!r}; its senses: {', '.join(senses) or 'none'}")
    record = json.loads(graph.metadata[METADATA_KEY])
    prefix = f"{sense}."

    def own(name: str) -> str | None:
        return "input" if name == sense else (name[len(prefix):] if name.startswith(prefix) else None)

    nodes = {own(k): v for k, v in graph.nodes.items() if own(k) is not None}
    edges = [(own(a), own(b)) for a, b in graph.edges if own(a) is not None and own(b) is not None]
    sub = {"dt": record.get("dt"), **record["senses"][sense]}
    sub["decision"] = f"argmax of {previous_neuron(edges)}'s final voltage"
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={METADATA_KEY: json.dumps(sub, default=str)})


def to_nir(model, dt: float = NIR_DT):
    """The NIR graph of a chain (a LoihiNetwork or a SpikingChain); layer i's nodes are named layer{i}.*."""
    return build_graph(model, dt).graph


def refuse_delays(model) -> None:
    """NIR 1.0 has no synaptic-delay node: a chain whose synapses delay spikes has no NIR graph."""
    _, layers, _ = _chain_parts(model)
    for index, layer in enumerate(layers):
        synapse = layer.synapse
        if getattr(synapse, "temporal", False) and bool((synapse.integer_delays() != 0).any()):
            synapse_node(synapse, (), f"layer {index}")


def load_for_nir(run_or_checkpoint: Path):
    """(chain, data set, time bins) of a cell (its folder, its model.pt, or a run with one cell) or a bare Loihi
    network checkpoint: Loihi cells as their Loihi chain, others as a SpikingChain; one line names what has
    no NIR form (a float memory, a neuron model, learned delays, a two-sense cell)."""
    from neuromem.export.cli import checkpoint_path
    from neuromem.export.model import CHECKPOINT_KIND, cell_network, chip_network, model_from_checkpoint_dict
    from neuromem.memory.base import loihi_memory_names, memory_info
    from neuromem.study.store import read_checkpoint_file

    path = checkpoint_path(run_or_checkpoint)
    checkpoint = read_checkpoint_file(path)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("config"), dict):
        raise NeuromemError(f"{path}: not a neuromem checkpoint (expected a dict with 'config' and 'state_dict')")
    if checkpoint.get("kind") == CHECKPOINT_KIND:
        return model_from_checkpoint_dict(checkpoint, str(path)), None, None
    memory = checkpoint["config"].get("memory")
    try:
        info = memory_info(memory)
    except KeyError:
        raise NeuromemError(f"{path}: memory module {memory!r} is not registered here") from None
    if not info.loihi_exportable:
        spiking = loihi_memory_names()
        raise NeuromemError(
            f"{path}: NIR export refused: memory '{memory}' has no NIR form: {info.loihi_reason}; the spiking "
            f"memories export: {', '.join(spiking)} (`neuromem ablate --memory {spiking[0] if spiking else '...'}`)")
    senses = _senses_of(checkpoint, str(path))
    if senses is not None:
        return senses, senses.config.modality, senses.config.time_bins
    network, dataset, shape, config = cell_network(checkpoint, str(path))
    if config.neuron == "loihi":
        return chip_network(network, dataset, shape), dataset, config.time_bins
    try:
        chain = spiking_chain(network, dataset, shape)
    except NeuromemError as error:
        raise NeuromemError(f"{path}: {error}") from None
    chain.config = config
    return chain, dataset, config.time_bins


def _senses_of(checkpoint: dict, source: str) -> SenseChains | None:
    """A cell of several senses (joint, parallel) as its SenseChains, rebuilt as the trainer built it; None for a
    cell of one sense; a NeuromemError names what has no NIR form."""
    from neuromem.export.model import chains_per_sense, sense_networks

    found = sense_networks(checkpoint, source)
    if found is None:
        return None
    config, task, networks = found
    if config.neuron == "loihi":
        raise NeuromemError(f"{source}: NIR export of a '{config.modality}' cell of Loihi neurons is not written here "
                            "(a Loihi chain is one sense's); export it with --to lava, or train it with --neuron lif")
    chains: dict[str, SpikingChain] = chains_per_sense(networks, source, spiking_chain)
    for chain in chains.values():
        chain.config = config
    return SenseChains(chains, shared=task.shared_network, config=config, concept_labels=task.concept_labels)


def write_nir(network_or_checkpoint, path: str | Path, dt: float = NIR_DT, dataset: str | None = None,
              time_bins: int | None = None, data_info: dict | None = None) -> Path:
    """Write the NIR graph of a chain (LoihiNetwork, SpikingChain) or of a cell / checkpoint path to `path`;
    the data set and time bins it was trained on go into the graph's metadata (read from the cell if given one)."""
    import nir

    model = network_or_checkpoint
    if isinstance(model, (str, Path)):
        model, dataset, time_bins = load_for_nir(Path(model))
    config = getattr(model, "config", None)
    cell = {"memory": config.memory, "neuron": config.neuron, "cell": config.cell_id} if hasattr(config, "cell_id") else {}
    written = build_graph(model, dt, dataset=dataset, time_bins=time_bins,
                          data_fingerprint=(data_info or {}).get("data_fingerprint"), **cell)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(path), written.graph)
    return path


def caveats_of(model, dt: float = NIR_DT) -> list[str]:
    """What the chain's NIR graph does not say (one clause each)."""
    return build_graph(model, dt).caveats
