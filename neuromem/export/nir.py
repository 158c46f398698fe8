"""NIR interchange: Loihi networks to NIR graphs, and NIR graphs (ours, snnTorch's, Norse's) to neuromem layers.

Export writes the float shadow of the fixed-point network, a mapping of one
node per synapse and one per neuron layer: a convolution becomes `nir.Conv2d`
(integer kernel times 2**weight_exp, stride, padding, input shape, zero bias),
then `nir.Flatten` (NIR's batch-free dims: start_dim 0 of (C, H, W)) before the
first dense layer; a dense layer `nir.Linear` (the integer weights times
2**weight_exp, in units where the threshold is `vth`); every neuron layer a
`nir.CubaLIF` shaped like its neurons ((C, H, W) after a convolution); a
recurrent layer adds a `nir.Linear` from the neuron back to itself. Time
constants use snnTorch's NIR convention with dt = 1e-4 s: tau_syn = dt / (1 -
alpha), tau_mem = dt / (1 - beta), w_in = tau_syn / dt, r = tau_mem / dt,
where alpha = (4095 - du)/4096 and beta = (4096 - dv)/4096 are Lava's decays.
So snnTorch (`import_nir`) and Norse (`from_nir(..., dt=1e-4)`) run
u = alpha u + W s, v = beta v + u, spike when v > vth, reset to 0 - the
fixed-point model without its rounding. NIR has no synaptic delay, so
Loihi/Lava's outputs are these shifted by one step per layer (and differ where
rounding moves a voltage across the threshold). The readout (a Loihi neuron
that never fires) is a CubaLIF too; the decision is the argmax of its final v.

What the simulators' importers take (norse 1.1.0, snntorch 1.0.0, nirtorch 2.6):
Norse builds every graph neuromem writes, recurrent ones included. snnTorch
builds feed-forward graphs, convolutional ones included, but no recurrent layer
(it nests them as sub-graphs, which nirtorch 2.6 cannot build): so no SHD cell
(recurrent front end) and no `hopfield-spiking` cell (lateral inhibition).
Both map `nir.Flatten` to `torch.nn.Flatten(start_dim, end_dim)` on the
batched tensor, which with NIR's batch-free start_dim 0 would fold the batch
in: `run_norse`/`run_snntorch` feed a graph with a Flatten one sample at a
time (unbatched (C, H, W) steps). `nir_agreement` compares them, spike for
spike per layer, with neuromem's own float run and with the fixed-point model.

Import builds `neuromem.neurons.SpikingLinear` / `SpikingConv2d` (CUBA or LIF,
zero reset) stages from chains of Linear/Affine/Conv2d -> CubaLIF/LIF nodes
(Flatten between them), with recurrence given either as a cycle (ours) or as a
nested subgraph (snnTorch's RSynaptic/RLeaky).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neuromem.errors import NeuromemError
from neuromem.export.model import LoihiNetwork
from neuromem.neurons.functional.loihi import DECAY_UNITY
from neuromem.neurons.layers import SpikingConv2d, SpikingLayer, SpikingLinear
from neuromem.neurons.loihi import LoihiConv2d

NIR_DT = 1e-4  # snnTorch's NIR export/import convention
SUPPORTED_NODES = ("Input", "Output", "Linear", "Affine", "Conv2d", "Flatten", "CubaLIF", "LIF", "recurrent subgraph")


def _cuba_node(params, shape, dt: float):
    import nir

    if params.dv == 0:
        raise NeuromemError(
            "NIR export needs dv >= 1 in every layer (dv = 0 is a perfect integrator, tau_mem = infinity in NIR); "
            "train with dv >= 1"
        )
    alpha = (DECAY_UNITY - 1 - params.du) / DECAY_UNITY
    beta = (DECAY_UNITY - params.dv) / DECAY_UNITY
    tau_syn = dt / (1.0 - alpha)
    tau_mem = dt / (1.0 - beta)
    ones = np.ones(shape)
    # the bias is added to v each step (Lava units: u is scaled by 64, v's bias is not)
    v_leak = params.effective_bias / 64.0 / (1.0 - beta)
    return nir.CubaLIF(
        tau_syn=ones * tau_syn,
        tau_mem=ones * tau_mem,
        r=ones * tau_mem / dt,
        v_leak=ones * v_leak,
        v_threshold=ones * float(params.vth),
        w_in=ones * tau_syn / dt,
        v_reset=np.zeros(shape),
    )


def refuse_delays(model: LoihiNetwork) -> None:
    """NIR 1.0 has no synaptic-delay node: a chain whose synapses delay spikes has no NIR graph."""
    for index, layer in enumerate(model.layers):
        synapse = layer.synapse
        if getattr(synapse, "temporal", False) and bool((synapse.integer_delays() != 0).any()):
            raise NeuromemError(
                f"NIR export refused: layer {index} has learned synaptic delays (up to {synapse.window - 1} steps) and "
                "NIR 1.0 has no delay node, so the graph would drop them; export with `--to lava` (Lava's DelaySparse "
                "runs the delays bit-exact)")


def to_nir(model: LoihiNetwork, dt: float = NIR_DT):
    """The float NIR graph of a Loihi network (see module doc); layer i's nodes are named layer{i}.*."""
    import nir

    refuse_delays(model)
    nodes = {"input": nir.Input(input_type={"input": np.array(model.config.input_shape)})}
    edges: list[tuple[str, str]] = []
    previous = "input"

    def append(name: str, node) -> None:
        nonlocal previous
        nodes[name] = node
        edges.append((previous, name))
        previous = name

    for index, layer in enumerate(model.layers):
        scale = 2.0 ** layer.neuron.weight_exp
        if isinstance(layer, LoihiConv2d):
            conv = layer.synapse
            append(f"layer{index}.conv", nir.Conv2d(
                input_shape=tuple(int(d) for d in layer.in_shape[1:]),
                weight=conv.integer_weight().detach().double().numpy() * scale,
                stride=tuple(int(s) for s in conv.stride), padding=tuple(int(p) for p in conv.padding),
                dilation=1, groups=1, bias=np.zeros(conv.out_channels),
            ))
            append(f"layer{index}.lif", _cuba_node(layer.neuron, (conv.out_channels, *layer.out_hw), dt))
            continue
        if index == len(model.convs) and model.convs:
            last = model.convs[-1]
            frame = np.array([last.synapse.out_channels, *last.out_hw])
            append("flatten", nir.Flatten(input_type={"input": frame}, start_dim=0, end_dim=-1))
        weight, recurrent = layer.integer_weights()
        append(f"layer{index}.linear", nir.Linear(weight=(weight.detach().double().numpy() * scale)))
        neuron = f"layer{index}.lif"
        append(neuron, _cuba_node(layer.neuron, layer.out_features, dt))
        if recurrent is not None:
            rec = f"layer{index}.w_rec"
            nodes[rec] = nir.Linear(weight=recurrent.detach().double().numpy() * 2.0**layer.recurrent_exp)
            edges += [(neuron, rec), (rec, neuron)]
    append("output", nir.Output(output_type={"output": np.array([model.layers[-1].out_features])}))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def write_nir(model: LoihiNetwork, path: str | Path, dt: float = NIR_DT) -> Path:
    import nir

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(path), to_nir(model, dt))
    return path


def read_nir(path: str | Path):
    import nir

    path = Path(path)
    if not path.is_file():
        raise NeuromemError(f"NIR file {path} does not exist")
    try:
        return nir.read(str(path))
    except Exception as err:  # h5py/nir raise OSError, KeyError, ValueError... for damaged files
        raise NeuromemError(
            f"{path}: not a readable NIR graph ({type(err).__name__}); the file may be truncated or from another format"
        ) from None


# ---------------------------------------------------------------------------------------- import


class TimeMajorFlatten(nn.Module):
    """nir.Flatten on time-major (T, batch, ...) tensors: its dims count from the first feature dim."""

    def __init__(self, start_dim: int = 0, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start = self.start_dim + 2 if self.start_dim >= 0 else self.start_dim
        end = self.end_dim + 2 if self.end_dim >= 0 else self.end_dim
        return x.flatten(start, end)


class NIRNetwork(nn.Module):
    """A chain of neuromem spiking stages built from a NIR graph; time-major (T, batch, features...)."""

    def __init__(self, stages: list[nn.Module], names: list[str]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.names = names

    def run(self, inputs: torch.Tensor, return_membranes: bool = False):
        """All stages' outputs and the last spiking stage's final membrane (batch, out); with
        `return_membranes`, also that stage's membrane at every step (T, batch, out)."""
        from neuromem.neurons.functional.neuron import neuron_sequence
        from neuromem.neurons.models import neuron_of

        outputs, membrane, membranes, x = [], None, None, inputs
        for stage in self.stages:
            if isinstance(stage, SpikingLayer):
                x, state, membranes = neuron_sequence(neuron_of(stage.neuron), stage.project(x), stage.neuron,
                                                      stage.recurrent, return_membrane=True)
                membrane = state.membrane
            else:
                x = stage(x)
            outputs.append(x)
        if return_membranes:
            return outputs, membrane, membranes
        return outputs, membrane

    def spiking_outputs(self, inputs: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Spikes of every spiking stage (T, batch, ...) and the last one's membranes (T, batch, out)."""
        outputs, _, membranes = self.run(inputs, return_membranes=True)
        return [o for o, s in zip(outputs, self.stages) if isinstance(s, SpikingLayer)], membranes

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.run(inputs)[0][-1]


def _kind(node) -> str:
    return type(node).__name__


def _unsupported(name: str, node, why: str = "") -> NeuromemError:
    return NeuromemError(
        f"NIR node '{name}' of type {_kind(node)} is not supported{why}; neuromem imports: {', '.join(SUPPORTED_NODES)}"
    )


def _uniform(values, what: str, name: str) -> float:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0 or not np.allclose(array, array[0]):
        raise NeuromemError(f"NIR node '{name}': {what} differs between neurons; neuromem needs one value per layer")
    return float(array[0])


def _pair(value, what: str, name: str) -> int:
    """One int of a Conv2d's stride/padding/dilation (an int or an equal pair)."""
    values = np.asarray(value).reshape(-1)
    if values.size not in (1, 2) or not np.all(values == values[0]):
        raise NeuromemError(f"NIR node '{name}': Conv2d {what} {value!r} differs between height and width; "
                            "neuromem imports square strides, paddings and kernels")
    return int(values[0])


def _neuron_stage(name: str, node, synapse_name: str, synapse, recurrent: np.ndarray | None, dt: float):
    """SpikingLinear / SpikingConv2d equivalent of Linear/Affine/Conv2d -> (Cuba)LIF with optional recurrent weights."""
    import nir

    if not np.allclose(np.asarray(node.v_leak, dtype=np.float64), 0.0):
        raise NeuromemError(f"NIR node '{name}': v_leak != 0 is not supported (neither snnTorch nor neuromem model it)")
    if isinstance(node, nir.CubaLIF):
        tau_syn = _uniform(node.tau_syn, "tau_syn", name)
        tau_mem = _uniform(node.tau_mem, "tau_mem", name)
        alpha, beta = 1.0 - dt / tau_syn, 1.0 - dt / tau_mem
        # NIR: current gets w_in * dt/tau_syn of the input, voltage r * dt/tau_mem of the current
        gain = _uniform(node.w_in, "w_in", name) * dt / tau_syn * _uniform(node.r, "r", name) * dt / tau_mem
        overrides = {"alpha": alpha}
        kind = "cuba"
    else:
        tau = _uniform(node.tau, "tau", name)
        beta = 1.0 - dt / tau
        gain = _uniform(node.r, "r", name) * dt / tau
        overrides, kind = {}, "lif"
    if not (0.0 <= beta <= 1.0 and overrides.get("alpha", 0.0) >= 0.0):
        raise NeuromemError(f"NIR node '{name}': time constants shorter than dt={dt} s; import with the graph's own dt")
    threshold = _uniform(node.v_threshold, "v_threshold", name)
    neuron = dict(neuron=kind, beta=beta, threshold=threshold, reset="zero", **overrides)
    if isinstance(synapse, nir.Conv2d):
        if recurrent is not None:
            raise NeuromemError(f"NIR node '{name}': a recurrent weight on a convolutional layer is not supported")
        name = synapse_name
        weight = np.asarray(synapse.weight, dtype=np.float64)
        bias = np.asarray(synapse.bias, dtype=np.float64).reshape(-1) if synapse.bias is not None else None
        padding = 0 if isinstance(synapse.padding, str) and synapse.padding == "valid" else synapse.padding
        if isinstance(padding, str) or int(synapse.groups) != 1 or _pair(synapse.dilation, "dilation", name) != 1:
            raise NeuromemError(f"NIR node '{name}': Conv2d with padding {synapse.padding!r}, dilation {synapse.dilation!r} "
                                f"or groups {synapse.groups} is not supported; neuromem imports numeric padding, "
                                "no dilation, one group")
        out_channels, in_channels, kernel, kernel_w = weight.shape
        if kernel != kernel_w:
            raise NeuromemError(f"NIR node '{name}': Conv2d kernel {kernel}x{kernel_w} is not square")
        stage = SpikingConv2d(in_channels, out_channels, kernel, stride=_pair(synapse.stride, "stride", name),
                              padding=_pair(padding, "padding", name), **neuron)
    else:
        weight, bias = _affine_parts(synapse)
        out_channels, in_features = weight.shape
        stage = SpikingLinear(in_features, out_channels, recurrent=recurrent is not None, **neuron)
    with torch.no_grad():
        stage.synapse.weight.copy_(torch.as_tensor(weight * gain, dtype=torch.float32))
        bias = bias if bias is not None else np.zeros(out_channels)
        stage.synapse.bias.copy_(torch.as_tensor(bias * gain, dtype=torch.float32))
        if recurrent is not None:
            stage.recurrent.copy_(torch.as_tensor(recurrent * gain, dtype=torch.float32))
    return stage


def _affine_parts(node) -> tuple[np.ndarray, np.ndarray | None]:
    import nir

    weight = np.asarray(node.weight, dtype=np.float64)
    if weight.ndim != 2:
        raise NeuromemError(f"NIR {_kind(node)} weight of shape {weight.shape} is not a matrix")
    bias = np.asarray(node.bias, dtype=np.float64) if isinstance(node, nir.Affine) else None
    return weight, bias


def _recurrent_subgraph(name: str, graph):
    """snnTorch's RSynaptic/RLeaky export: a subgraph Input -> neuron <-> Linear -> Output."""
    import nir

    neurons = [(k, n) for k, n in graph.nodes.items() if isinstance(n, (nir.CubaLIF, nir.LIF))]
    weights = [(k, n) for k, n in graph.nodes.items() if isinstance(n, (nir.Linear, nir.Affine))]
    others = [(k, n) for k, n in graph.nodes.items() if not isinstance(n, (nir.CubaLIF, nir.LIF, nir.Linear, nir.Affine, nir.Input, nir.Output))]
    if len(neurons) != 1 or len(weights) != 1 or others:
        raise NeuromemError(
            f"NIR subgraph '{name}' is not a recurrent neuron layer (one LIF/CubaLIF and one Linear/Affine); "
            f"neuromem imports: {', '.join(SUPPORTED_NODES)}"
        )
    weight, bias = _affine_parts(weights[0][1])
    if bias is not None and not np.allclose(bias, 0.0):
        raise NeuromemError(f"NIR subgraph '{name}': a recurrent bias is not supported")
    return neurons[0][1], weight


def _as_graph(graph_or_path):
    import nir

    graph = read_nir(graph_or_path) if isinstance(graph_or_path, (str, Path)) else graph_or_path
    if not isinstance(graph, nir.NIRGraph):
        raise NeuromemError(f"expected a NIR graph, got {_kind(graph)}")
    return graph


def _recurrent_weights(graph) -> dict[str, str]:
    """neuron -> the Linear/Affine whose only edges are neuron -> it -> the same neuron (its recurrent weight)."""
    import nir

    nodes, edges = graph.nodes, list(dict.fromkeys(tuple(e) for e in graph.edges))
    recurrent_of: dict[str, str] = {}
    for key, node in nodes.items():
        if isinstance(node, (nir.Linear, nir.Affine)):
            targets = [t for s, t in edges if s == key]
            sources = [s for s, t in edges if t == key]
            if len(targets) == 1 and sources == targets and isinstance(nodes.get(targets[0]), (nir.CubaLIF, nir.LIF)):
                recurrent_of[targets[0]] = key
    return recurrent_of


def from_nir(graph_or_path, dt: float = NIR_DT) -> NIRNetwork:
    """neuromem layers for a NIR graph (or .nir path), discretised with time step `dt` (seconds).

    snnTorch (and neuromem's own export) write time constants for dt = 1e-4 s.
    Norse 1.1.0's `to_nir` writes tau = dt_norse / tau_mem_inv (not 1 / tau_mem_inv), so its
    graphs reproduce the Norse module with dt = dt_norse ** 2 (1e-6 for Norse's default 1e-3).
    A Flatten's dims are NIR's (batch-free: start_dim 0 is the first feature dim).
    """
    import nir

    graph = _as_graph(graph_or_path)
    nodes, edges = graph.nodes, list(dict.fromkeys(tuple(e) for e in graph.edges))
    successors: dict[str, list[str]] = {k: [] for k in nodes}
    for source, target in edges:
        if source not in nodes or target not in nodes:
            raise NeuromemError(f"NIR edge {source} -> {target} names a node the graph does not have")
        successors[source].append(target)
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise NeuromemError(f"NIR graph has {len(inputs)} Input nodes; neuromem imports single-input chains")
    recurrent_of = _recurrent_weights(graph)

    stages, names = [], []
    pending = None  # the weight node (Linear/Affine/Conv2d) waiting for its neurons
    current, visited = inputs[0], set()
    while True:
        visited.add(current)
        following = [s for s in successors[current] if s != recurrent_of.get(current)]
        if not following:
            break
        if len(following) > 1:
            raise NeuromemError(f"NIR node '{current}' fans out to {following}; neuromem imports chains (one path)")
        name = following[0]
        if name in visited:
            raise NeuromemError(f"NIR graph has a cycle through '{name}' that is not a recurrent weight")
        node = nodes[name]
        if isinstance(node, nir.Output):
            break
        if isinstance(node, (nir.Linear, nir.Affine, nir.Conv2d)):
            if pending is not None:
                raise NeuromemError(f"NIR node '{name}': two weight layers in a row are not supported")
            if not isinstance(node, nir.Conv2d):
                _affine_parts(node)  # a matrix, or a one-line error now
            pending = (name, node)
        elif isinstance(node, (nir.CubaLIF, nir.LIF, nir.NIRGraph)):
            if pending is None:
                raise NeuromemError(f"NIR node '{name}': a neuron layer without a weight layer before it is not supported")
            if isinstance(node, nir.NIRGraph):
                neuron, recurrent = _recurrent_subgraph(name, node)
            else:
                neuron = node
                rec_key = recurrent_of.get(name)
                recurrent = _affine_parts(nodes[rec_key])[0] if rec_key else None
            stages.append(_neuron_stage(name, neuron, *pending, recurrent, dt))
            names.append(name)
            pending = None
        elif isinstance(node, nir.Flatten):
            if pending is not None:
                raise NeuromemError(f"NIR node '{name}': a Flatten between a weight layer and its neurons is not supported")
            stages.append(TimeMajorFlatten(node.start_dim, node.end_dim))
            names.append(name)
        else:
            raise _unsupported(name, node)
        current = name
    if pending is not None and isinstance(pending[1], nir.Conv2d):
        raise NeuromemError(f"NIR node '{pending[0]}': the graph ends in a Conv2d without neurons; "
                            "neuromem imports a trailing Linear/Affine only")
    if pending is not None:  # a trailing weight layer: non-spiking linear output
        weight, bias = _affine_parts(pending[1])
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
            if bias is not None:
                linear.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
        stages.append(linear)
        names.append("linear")
    if not any(isinstance(s, (SpikingLayer, nn.Linear)) for s in stages):
        raise NeuromemError("NIR graph has no layers neuromem can import")
    return NIRNetwork(stages, names)


# ------------------------------------------------------------------ running the graph in other simulators


def _torch_name(name: str) -> str:
    return name.replace(".", "_")  # what nirtorch names a node's module


def _neuron_layers(graph) -> list[str]:
    """The graph's neuron layers in signal order (the names `from_nir` gives its spiking stages)."""
    network = from_nir(graph)
    return [n for n, s in zip(network.names, network.stages) if isinstance(s, SpikingLayer)]


def _samples(graph, inputs: torch.Tensor) -> list[torch.Tensor]:
    """Batched (T, batch, ...) inputs as the importers can take them: whole, or one unbatched sample at a
    time where the graph has a Flatten (they apply NIR's batch-free start_dim to the batched tensor)."""
    import nir

    if any(isinstance(n, nir.Flatten) for n in graph.nodes.values()):
        return [inputs[:, i] for i in range(inputs.shape[1])]
    return [inputs]


def _stack(runs: list[list[torch.Tensor]], batched: bool) -> torch.Tensor:
    """Steps of each run -> (T, batch, ...)."""
    per_run = [torch.stack(steps) for steps in runs]
    return per_run[0] if batched else torch.stack(per_run, dim=1)


def _record_steps(graph, inputs: torch.Tensor, layers: list[str], start, step):
    """Each sample `_samples` gives, step by step: `start()` before a sample, `step(x_t)` -> (every layer's
    spikes, the last layer's voltage) at each step; stacked as (T, batch, ...) per layer and the voltage."""
    samples = _samples(graph, inputs)
    spikes, voltages = [[] for _ in layers], []
    with torch.no_grad():
        for x in samples:
            start()
            steps, volts = [[] for _ in layers], []
            for x_t in x.float():
                layer_spikes, voltage = step(x_t)
                for record, s in zip(steps, layer_spikes):
                    record.append(s)
                volts.append(voltage)
            for record, steps_of_layer in zip(spikes, steps):
                record.append(steps_of_layer)
            voltages.append(volts)
    batched = len(samples) == 1 and samples[0].dim() == inputs.dim()
    return [_stack(r, batched) for r in spikes], _stack(voltages, batched)


def run_norse(graph, inputs: torch.Tensor, dt: float = NIR_DT) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The graph in Norse (`norse.torch.from_nir`): spikes of every neuron layer (T, batch, ...) and the last
    layer's voltage (T, batch, out), from time-major binary inputs (T, batch, ...)."""
    import warnings

    import norse.torch as norse

    graph = _as_graph(graph)
    layers = _neuron_layers(graph)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # nirtorch.load, which Norse 1.1.0 calls
        net = norse.from_nir(graph, dt=dt)
    carried = {}

    def start() -> None:
        carried["state"] = None

    def step(x_t: torch.Tensor):
        _, state = net(x_t, carried["state"])
        carried["state"] = state
        last = state.state[_torch_name(layers[-1])][0]
        voltage = (last[1] if isinstance(last, tuple) else last).v  # CubaLIF: (synapse, neuron)
        return [state.cache[_torch_name(name)] for name in layers], voltage

    return _record_steps(graph, inputs, layers, start, step)


def snntorch_refusal(graph) -> str | None:
    """Why snnTorch 1.0.0's importer cannot build the graph, or None."""
    import nir

    if _recurrent_weights(graph) or any(isinstance(n, nir.NIRGraph) for n in graph.nodes.values()):
        return ("snnTorch 1.0.0's importer (on nirtorch 2.6) cannot build recurrent layers: it nests them as "
                "sub-graphs, which nirtorch's interpreter does not run; Norse runs this graph")
    return None


def run_snntorch(graph, inputs: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The graph in snnTorch (`snntorch.import_nir.import_from_nir`), as `run_norse`; a NeuromemError for a
    graph its importer cannot build (`snntorch_refusal`)."""
    import contextlib
    import copy
    import io

    from snntorch import import_nir, utils

    graph = _as_graph(graph)
    refusal = snntorch_refusal(graph)
    if refusal:
        raise NeuromemError(refusal)
    layers = _neuron_layers(graph)
    with contextlib.redirect_stdout(io.StringIO()):  # the importer prints its progress
        net = import_nir.import_from_nir(copy.deepcopy(graph))  # it rewrites the graph it is given
    modules = dict(net.named_modules())
    seen: dict[str, torch.Tensor] = {}
    hooks = [modules[_torch_name(name)].register_forward_hook(
        lambda _m, _i, out, name=name: seen.__setitem__(name, out[0] if isinstance(out, tuple) else out))
        for name in layers]

    def step(x_t: torch.Tensor):
        net(x_t)
        return [seen[name].clone() for name in layers], modules[_torch_name(layers[-1])].mem.clone()

    try:
        return _record_steps(graph, inputs, layers, lambda: utils.reset(net), step)
    finally:
        for hook in hooks:
            hook.remove()


SIMULATORS = {"norse": run_norse, "snntorch": run_snntorch}


@dataclass
class SimulatorAgreement:
    """One simulator's run of the graph against neuromem's float run of the same graph."""

    name: str
    refused: str | None = None
    mismatches: list[int] = field(default_factory=list)  # spike entries (neuron x step x sample) that differ, per layer
    decisions_equal: float | None = None  # fraction of samples with the same argmax of the final readout voltage
    voltage_error: float | None = None  # max |v - v_neuromem| of the readout over all steps / max |v_neuromem|
    accuracy: float | None = None  # of its decisions, where labels were given


@dataclass
class NIRAgreement:
    """The exported graph run three ways on the same inputs: neuromem's float run (`from_nir`), the fixed-point
    chain it came from (bit-exact with Lava; one step of delay per layer, aligned here), and other simulators."""

    samples: int
    steps: int
    layers: list[str]
    spikes: list[int]  # spikes of neuromem's float run per layer
    fixed_mismatches: list[int]  # vs the fixed-point chain, its layer i shifted by i + 1 steps
    fixed_spikes: list[int]
    decisions_vs_fixed: float  # float run's final decision vs the chain's (each over the same T steps)
    decisions_vs_fixed_aligned: float  # float run's decision at step T - 1 - layers (the chain's delay) vs the chain's
    simulators: list[SimulatorAgreement]
    fixed_accuracy: float | None = None  # where labels were given: the chain's decisions (as Lava's)
    float_accuracy: float | None = None  # neuromem's float run of the graph

    def lines(self) -> list[str]:
        shown = ", ".join(f"{n} {s}" for n, s in zip(self.layers, self.spikes))
        out = [f"NIR graph on {self.samples} samples x {self.steps} steps; neuromem float run's spikes per layer: {shown}"]
        fixed = ", ".join(f"{m}/{s}" for m, s in zip(self.fixed_mismatches, self.fixed_spikes))
        out.append(f"  vs the Loihi fixed-point chain (delay-aligned; mismatching entries / chain's spikes per layer): {fixed}; "
                   f"decisions equal {100 * self.decisions_vs_fixed:.1f}% "
                   f"({100 * self.decisions_vs_fixed_aligned:.1f}% at the delay-aligned step)")
        for sim in self.simulators:
            if sim.refused:
                out.append(f"  {sim.name}: not run: {sim.refused}")
                continue
            out.append(f"  {sim.name}: mismatching spike entries per layer {sim.mismatches}; decisions equal "
                       f"{100 * sim.decisions_equal:.1f}%; readout voltage max error {sim.voltage_error:.2e} (relative)")
        if self.fixed_accuracy is not None:
            shown = [f"fixed-point chain {100 * self.fixed_accuracy:.1f}%", f"NIR graph in neuromem {100 * self.float_accuracy:.1f}%",
                     *(f"{s.name} {100 * s.accuracy:.1f}%" for s in self.simulators if s.accuracy is not None)]
            out.append(f"  accuracy on these samples: {', '.join(shown)}")
        return out


def nir_agreement(model: LoihiNetwork, inputs, simulators=("norse", "snntorch"), dt: float = NIR_DT,
                  labels=None) -> NIRAgreement:
    """Export `model` to NIR and run the graph in neuromem (float), the fixed-point chain itself, and each of
    `simulators` (norse, snntorch; one that cannot build the graph is reported as refused), on batch-major
    (N, T, ...) inputs binarised as the chip sees them; with `labels`, every run's accuracy too."""
    from neuromem.export.model import binary_time_major

    x = binary_time_major(inputs)
    graph = to_nir(model, dt)
    with torch.no_grad():
        fixed_spikes, fixed_voltages = model.run(x)
        ours, membranes = from_nir(graph, dt).spiking_outputs(x.float())
    steps, layers = x.shape[0], _neuron_layers(graph)
    fixed_mismatches, fixed_counts = [], []
    for index, (chip, float_run) in enumerate(zip(fixed_spikes, ours)):
        delay = index + 1
        chip, float_run = chip[delay:].float(), float_run[: steps - delay].float()
        fixed_mismatches.append(int((chip != float_run).sum()))
        fixed_counts.append(int(chip.sum()))
    chip_decisions = fixed_voltages[-1].argmax(-1)
    aligned = max(steps - 1 - len(model.layers), 0)
    report = NIRAgreement(
        samples=int(x.shape[1]), steps=int(steps), layers=layers, spikes=[int(s.sum()) for s in ours],
        fixed_mismatches=fixed_mismatches, fixed_spikes=fixed_counts,
        decisions_vs_fixed=float((membranes[-1].argmax(-1) == chip_decisions).float().mean()),
        decisions_vs_fixed_aligned=float((membranes[aligned].argmax(-1) == chip_decisions).float().mean()),
        simulators=[],
    )
    truth = torch.as_tensor(np.asarray(labels), dtype=torch.long) if labels is not None else None

    def accuracy(decisions: torch.Tensor) -> float | None:
        return None if truth is None else float((decisions.cpu() == truth).float().mean())

    report.fixed_accuracy, report.float_accuracy = accuracy(chip_decisions), accuracy(membranes[-1].argmax(-1))
    for name in simulators:
        if name not in SIMULATORS:
            raise NeuromemError(f"simulator {name!r} is not known; valid: {', '.join(SIMULATORS)}")
        refusal = snntorch_refusal(graph) if name == "snntorch" else None
        if refusal:
            report.simulators.append(SimulatorAgreement(name, refused=refusal))
            continue
        runner = SIMULATORS[name]
        theirs, voltages = runner(graph, x.float(), dt) if name == "norse" else runner(graph, x.float())
        scale = float(membranes.abs().max()) or 1.0
        report.simulators.append(SimulatorAgreement(
            name,
            mismatches=[int((a != b.to(a.dtype)).sum()) for a, b in zip(ours, theirs)],
            decisions_equal=float((voltages[-1].argmax(-1) == membranes[-1].argmax(-1)).float().mean()),
            voltage_error=float((voltages - membranes).abs().max()) / scale,
            accuracy=accuracy(voltages[-1].argmax(-1)),
        ))
    return report
