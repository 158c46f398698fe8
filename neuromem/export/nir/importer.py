"""NIR graphs (neuromem's, snnTorch's, Norse's, ...) to neuromem modules: one function per node, the graph walk
left to nirtorch (`nirtorch.nir_to_torch`, as Norse's `import_nir.py` does).

Every module built here takes a whole time-major sequence (T, batch, ...) at once, so the walk runs each
node once per sequence: synapses (`nir.Affine`, `nir.Linear`, `nir.Conv2d`) on every step's frames,
`nir.Flatten` with NIR's batch-free dims, and each neuron node through the registered neuron model that
reads it (`neuromem.neurons.models.nir_neuron_from`: lif reads LIF, IF and a CubaLIF with tau_syn = dt,
cuba any other CubaLIF), run by neuromem's own neuron kernels. A recurrent weight is the neuron layer's,
not an edge the walk could take step by step: a Linear/Affine whose only edges run from a neuron node
back to it (neuromem's and Norse's form), or snnTorch's nested four-node subgraph (RLeaky, RSynaptic),
is folded into the neuron node before the walk. Any other cycle is refused.

`from_nir(graph, dt)` reads the graph as NIR states it (a neuromem subtract reset or Loihi layer recorded
in a node's metadata reads as the reset to 0 and the float CubaLIF the graph holds): neuromem's run of
the graph, which `--compare` sets beside the other simulators' runs. `neuromem import` reads it with
`exact=True` (`chain_of`), restoring what the metadata says, and builds a cell from the chain.

Time: NIR's time constants are continuous; the graph is discretised with step `dt` (seconds). snnTorch
(and neuromem) write for dt = 1e-4 s. Norse 1.1.0's `to_nir` writes tau = dt_norse / tau_mem_inv (not
1 / tau_mem_inv), so its graphs reproduce the Norse module with dt = dt_norse ** 2 (1e-6 for Norse's
default 1e-3).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from neuromem.errors import NeuromemError
from neuromem.export.nir.export import NIR_DT
from neuromem.neurons.models import NIRNeuron, nir_neuron_from

NEURON_NODES = (nir.LIF, nir.CubaLIF, nir.IF)
WEIGHT_NODES = (nir.Linear, nir.Affine)
SUPPORTED_NODES = ("Input", "Output", "Linear", "Affine", "Conv2d", "Flatten", "CubaLIF", "LIF", "IF",
                   "recurrent subgraph")


def read_nir(path: str | Path):
    path = Path(path)
    if path.is_dir():
        raise NeuromemError(f"NIR file {path} is a directory; give a .nir file")
    if not path.is_file():
        raise NeuromemError(f"NIR file {path} does not exist")
    try:
        return nir.read(str(path))
    except Exception as err:  # h5py/nir raise OSError, KeyError, ValueError... for damaged files
        raise NeuromemError(
            f"{path}: not a readable NIR graph ({type(err).__name__}); the file may be truncated or from another format"
        ) from None


def as_graph(graph_or_path):
    graph = read_nir(graph_or_path) if isinstance(graph_or_path, (str, Path)) else graph_or_path
    if not isinstance(graph, nir.NIRGraph):
        raise NeuromemError(f"expected a NIR graph, got {type(graph).__name__}")
    return graph


def _unsupported(name: str, node, why: str = "") -> NeuromemError:
    return NeuromemError(f"NIR node '{name}' of type {type(node).__name__} is not supported{why}; neuromem imports: "
                         f"{', '.join(SUPPORTED_NODES)}")


def _affine_parts(node, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    weight = np.asarray(node.weight, dtype=np.float64)
    if weight.ndim != 2:
        raise NeuromemError(f"NIR node '{name}': {type(node).__name__} weight of shape {weight.shape} is not a matrix")
    bias = np.asarray(node.bias, dtype=np.float64).reshape(-1) if isinstance(node, nir.Affine) else None
    if not np.isfinite(weight).all() or (bias is not None and not np.isfinite(bias).all()):
        raise NeuromemError(f"NIR node '{name}': its weights hold NaN or infinity")
    return weight, bias


def _pair(value, what: str, name: str) -> int:
    """One int of a Conv2d's stride/padding/dilation (an int or an equal pair)."""
    values = np.asarray(value).reshape(-1)
    if values.size not in (1, 2) or not np.all(values == values[0]):
        raise NeuromemError(f"NIR node '{name}': Conv2d {what} {value!r} differs between height and width; "
                            "neuromem imports square strides, paddings and kernels")
    return int(values[0])


def conv_parts(node, name: str) -> dict[str, Any]:
    """A Conv2d's weight, bias, stride and padding as neuromem's convolutions take them (one line refusing the rest)."""
    weight = np.asarray(node.weight, dtype=np.float64)
    bias = np.asarray(node.bias, dtype=np.float64).reshape(-1) if node.bias is not None else np.zeros(weight.shape[0])
    padding = 0 if isinstance(node.padding, str) and node.padding == "valid" else node.padding
    if isinstance(padding, str) or int(node.groups) != 1 or _pair(node.dilation, "dilation", name) != 1:
        raise NeuromemError(f"NIR node '{name}': Conv2d with padding {node.padding!r}, dilation {node.dilation!r} "
                            f"or groups {node.groups} is not supported; neuromem imports numeric padding, "
                            "no dilation, one group")
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        raise NeuromemError(f"NIR node '{name}': its weights hold NaN or infinity")
    if weight.ndim != 4 or weight.shape[2] != weight.shape[3]:
        raise NeuromemError(f"NIR node '{name}': Conv2d kernel of shape {weight.shape} is not square")
    return {"weight": weight, "bias": bias, "stride": _pair(node.stride, "stride", name),
            "padding": _pair(padding, "padding", name)}


# ------------------------------------------------------------------ recurrence folded into the neuron node


@dataclass(eq=False)
class RecurrentNeuron(nir.NIRNode):
    """A neuron node with its recurrent weight (neuron -> weight -> the same neuron), for the walk only."""

    neuron: Any
    weight: np.ndarray

    def __post_init__(self):
        self.input_type = dict(self.neuron.input_type)
        self.output_type = dict(self.neuron.output_type)


def _recurrent_weights(graph) -> dict[str, str]:
    """neuron -> the Linear/Affine whose only edges are neuron -> it -> the same neuron (its recurrent weight)."""
    nodes, edges = graph.nodes, list(dict.fromkeys(tuple(e) for e in graph.edges))
    recurrent_of: dict[str, str] = {}
    for key, node in nodes.items():
        if isinstance(node, WEIGHT_NODES):
            targets = [t for s, t in edges if s == key]
            sources = [s for s, t in edges if t == key]
            if len(targets) == 1 and sources == targets and isinstance(nodes.get(targets[0]), NEURON_NODES):
                recurrent_of[targets[0]] = key
    return recurrent_of


def _recurrent_subgraph(name: str, graph) -> RecurrentNeuron:
    """snnTorch's RSynaptic/RLeaky export: a subgraph Input -> neuron <-> Linear -> Output."""
    neurons = [n for n in graph.nodes.values() if isinstance(n, NEURON_NODES)]
    weights = [(k, n) for k, n in graph.nodes.items() if isinstance(n, WEIGHT_NODES)]
    others = [n for n in graph.nodes.values() if not isinstance(n, (*NEURON_NODES, *WEIGHT_NODES, nir.Input, nir.Output))]
    if len(neurons) != 1 or len(weights) != 1 or others:
        raise NeuromemError(f"NIR subgraph '{name}' is not a recurrent neuron layer (one LIF/CubaLIF and one "
                            f"Linear/Affine); neuromem imports: {', '.join(SUPPORTED_NODES)}")
    weight, bias = _affine_parts(weights[0][1], f"{name}.{weights[0][0]}")
    if bias is not None and not np.allclose(bias, 0.0):
        raise NeuromemError(f"NIR subgraph '{name}': a recurrent bias is not supported")
    return RecurrentNeuron(neuron=neurons[0], weight=weight)


def folded(graph) -> nir.NIRGraph:
    """The graph with every recurrent weight folded into its neuron node (duplicate edges dropped); one line
    naming an edge to a missing node, or a node of a type no function here reads."""
    nodes, edges = dict(graph.nodes), list(dict.fromkeys(tuple(e) for e in graph.edges))
    for source, target in edges:
        if source not in nodes or target not in nodes:
            raise NeuromemError(f"NIR edge {source} -> {target} names a node the graph does not have")
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise NeuromemError(f"NIR graph has {len(inputs)} Input nodes; neuromem imports single-input graphs")
    for neuron, weight in _recurrent_weights(graph).items():
        nodes[neuron] = RecurrentNeuron(neuron=nodes[neuron], weight=_affine_parts(nodes[weight], weight)[0])
        del nodes[weight]
        edges = [e for e in edges if weight not in e]
    for name, node in list(nodes.items()):
        if isinstance(node, nir.NIRGraph):
            nodes[name] = _recurrent_subgraph(name, node)
        elif not isinstance(node, (*NEURON_NODES, *WEIGHT_NODES, nir.Conv2d, nir.Flatten, nir.Input, nir.Output,
                                   RecurrentNeuron)):
            raise _unsupported(name, node)
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False, metadata=dict(graph.metadata or {}))


# ------------------------------------------------------------------ one function per node


class TimeMajorFlatten(nn.Module):
    """nir.Flatten on time-major (T, batch, ...) tensors: its dims count from the first feature dim."""

    def __init__(self, start_dim: int = 0, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start = self.start_dim + 2 if self.start_dim >= 0 else self.start_dim
        end = self.end_dim + 2 if self.end_dim >= 0 else self.end_dim
        return x.flatten(start, end)


class SequenceConv2d(nn.Conv2d):
    """A convolution on every step's frames of (T, batch, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = super().forward(x.reshape(-1, *x.shape[2:]))
        return frames.reshape(*x.shape[:2], *frames.shape[1:])


class NeuronSequence(nn.Module):
    """A NIR neuron node as the registered model reading it: input currents (T, batch, ...) times the model's
    gain -> spikes; the last run's membranes are kept (`membranes`, (T, batch, ...))."""

    def __init__(self, read: NIRNeuron, recurrent: np.ndarray | None = None) -> None:
        super().__init__()
        self.parameters_, self.gain = read.parameters, float(read.gain)
        self.recurrent = None
        if recurrent is not None:
            gain = read.gain if read.recurrent_gain is None else read.recurrent_gain
            self.recurrent = nn.Parameter(torch.as_tensor(recurrent * gain, dtype=torch.float32), requires_grad=False)
        self.membranes: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from neuromem.neurons.functional.neuron import neuron_sequence
        from neuromem.neurons.models import neuron_of

        currents = x * self.gain if self.gain != 1.0 else x
        recurrent = None if self.recurrent is None else self.recurrent.to(currents.dtype)
        spikes, _, self.membranes = neuron_sequence(neuron_of(self.parameters_), currents.contiguous(),
                                                    self.parameters_, recurrent, return_membrane=True)
        return spikes


def _linear(node) -> nn.Linear:
    weight, bias = _affine_parts(node, type(node).__name__)
    module = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        module.weight.copy_(torch.as_tensor(weight))
        if bias is not None:
            module.bias.copy_(torch.as_tensor(bias))
    return module


def _conv(node) -> SequenceConv2d:
    parts = conv_parts(node, "Conv2d")
    out_channels, in_channels, kernel, _ = parts["weight"].shape
    module = SequenceConv2d(in_channels, out_channels, kernel, stride=parts["stride"], padding=parts["padding"])
    with torch.no_grad():
        module.weight.copy_(torch.as_tensor(parts["weight"]))
        module.bias.copy_(torch.as_tensor(parts["bias"]))
    return module


def read_neuron(node, dt: float, exact: bool, name: str = "") -> NIRNeuron:
    try:
        found = nir_neuron_from(node, dt, exact)
    except NeuromemError as error:
        raise NeuromemError(f"NIR node '{name or type(node).__name__}': {error}") from None
    if found is None:
        raise _unsupported(name or type(node).__name__, node, " (no registered neuron model reads it)")
    return found


def _neuron(node, dt: float, exact: bool = False) -> NeuronSequence:
    return NeuronSequence(read_neuron(node, dt, exact))


def _recurrent(node: RecurrentNeuron, dt: float, exact: bool = False) -> NeuronSequence:
    return NeuronSequence(read_neuron(node.neuron, dt, exact), recurrent=node.weight)


def node_table(dt: float, exact: bool = False) -> dict[type, Any]:
    """NIR node type -> the function building its neuromem module (nirtorch calls it with the node)."""
    return {
        nir.Input: lambda node: nn.Identity(),
        nir.Output: lambda node: nn.Identity(),
        nir.Affine: _linear,
        nir.Linear: _linear,
        nir.Conv2d: _conv,
        nir.Flatten: lambda node: TimeMajorFlatten(node.start_dim, node.end_dim),
        nir.LIF: partial(_neuron, dt=dt, exact=exact),
        nir.CubaLIF: partial(_neuron, dt=dt, exact=exact),
        nir.IF: partial(_neuron, dt=dt, exact=exact),
        RecurrentNeuron: partial(_recurrent, dt=dt, exact=exact),
    }


class NIRNetwork(nn.Module):
    """A NIR graph as neuromem modules walked by nirtorch; time-major (T, batch, ...) in, the graph's output out."""

    def __init__(self, executor: nn.Module, neuron_names: list[str]) -> None:
        super().__init__()
        self.executor = executor
        self.names = neuron_names  # the neuron nodes in signal order (their NIR names)

    def neurons(self) -> list[NeuronSequence]:
        modules = dict(self.executor.named_modules())
        return [modules[_torch_name(name)] for name in self.names]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        out = self.executor(inputs.float())
        return out[0] if isinstance(out, tuple) else out

    @torch.no_grad()
    def spiking_outputs(self, inputs: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Spikes of every neuron node (T, batch, ...) and the last one's membranes (T, batch, out)."""
        seen: dict[str, torch.Tensor] = {}
        hooks = [module.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out))
                 for name, module in zip(self.names, self.neurons())]
        try:
            self(inputs)
        finally:
            for hook in hooks:
                hook.remove()
        return [seen[name] for name in self.names], self.neurons()[-1].membranes

    def run(self, inputs: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Spikes of every neuron node and the last one's final membrane (batch, out)."""
        spikes, membranes = self.spiking_outputs(inputs)
        return spikes, membranes[-1]


def _torch_name(name: str) -> str:
    import keyword

    name = name.replace(".", "_")  # as nirtorch names a node's module
    return f"nir_node_{name}" if keyword.iskeyword(name) else name


def signal_order(graph) -> list[str]:
    """The graph's nodes in signal order (a topological order from its Input; recurrent weights folded); one
    line naming a node on a cycle that is not a neuron's recurrent weight."""
    edges = list(dict.fromkeys(tuple(e) for e in graph.edges))
    waiting = {k: sum(1 for _, t in edges if t == k) for k in graph.nodes}
    order = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    for name in order:  # grows as nodes become ready
        for source, target in edges:
            if source == name:
                waiting[target] -= 1
                if waiting[target] == 0:
                    order.append(target)
    stuck = [k for k in graph.nodes if k not in order]
    if stuck:
        raise NeuromemError(f"NIR graph has a cycle through '{stuck[0]}' that is not a recurrent weight (a "
                            "Linear/Affine from a neuron back to itself), or nodes the Input does not reach")
    return order


def from_nir(graph_or_path, dt: float = NIR_DT, exact: bool = False) -> NIRNetwork:
    """neuromem modules for a NIR graph (or .nir path) as NIR states it, discretised with time step `dt` (seconds);
    see the module doc (Norse 1.1.0's graphs: dt = its dt squared). `exact`: read the neuron models a node's
    neuromem metadata names (a subtract reset restored; not Loihi layers, whose fixed point runs in a cell)."""
    import warnings

    import nirtorch

    graph = folded(as_graph(graph_or_path))
    neuron_names = [k for k in signal_order(graph) if isinstance(graph.nodes[k], (*NEURON_NODES, RecurrentNeuron))]
    for name in neuron_names:  # a node no model reads is named here, not deep in the walk
        node = graph.nodes[name]
        read = read_neuron(node.neuron if isinstance(node, RecurrentNeuron) else node, dt, exact, name=name)
        if read.layer:
            raise NeuromemError(f"NIR node '{name}': its {type(read.parameters).__name__} layer runs in a cell "
                                "(`neuromem import`), not in the graph's float run")
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Conv2d):
            conv_parts(node, name)
        elif isinstance(node, WEIGHT_NODES):
            _affine_parts(node, name)
    if not neuron_names and not any(isinstance(n, WEIGHT_NODES) for n in graph.nodes.values()):
        raise NeuromemError("NIR graph has no layers neuromem can import")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            executor = nirtorch.nir_to_torch(graph, node_table(dt, exact), default_map={})
    except NeuromemError:
        raise
    except (ValueError, KeyError, RuntimeError, TypeError) as error:
        raise NeuromemError(f"NIR graph cannot be walked: {' '.join(str(error).split())[:200]}") from None
    return NIRNetwork(executor, neuron_names)
