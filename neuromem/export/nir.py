"""NIR interchange: Loihi networks to NIR graphs, and NIR graphs (ours, snnTorch's, Norse's) to neuromem layers.

Export writes the float shadow of the fixed-point network: per layer a
`nir.Linear` (the integer weights times 2**weight_exp, in units where the
threshold is `vth`) and a `nir.CubaLIF`; a recurrent layer adds a `nir.Linear`
from the neuron back to itself. Time constants use snnTorch's NIR convention
with dt = 1e-4 s: tau_syn = dt / (1 - alpha), tau_mem = dt / (1 - beta),
w_in = tau_syn / dt, r = tau_mem / dt, where alpha = (4095 - du)/4096 and
beta = (4096 - dv)/4096 are Lava's decays. So snnTorch (`import_nir`) and Norse
(`from_nir(..., dt=1e-4)`) run u = alpha u + W s, v = beta v + u, spike when
v > vth, reset to 0 - the fixed-point model without its rounding. NIR has no
synaptic delay, so Loihi/Lava's outputs are these shifted by one step per
layer (and differ where rounding moves a voltage across the threshold).

Import builds `neuromem.neurons.SpikingLinear` (CUBA or LIF, zero reset)
stages from chains of Linear/Affine -> CubaLIF/LIF nodes, with recurrence given
either as a cycle (ours) or as a nested subgraph (snnTorch's RSynaptic/RLeaky).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from neuromem.errors import NeuromemError
from neuromem.export.model import LoihiNetwork
from neuromem.neurons.functional.loihi import DECAY_UNITY
from neuromem.neurons.layers import SpikingLinear

NIR_DT = 1e-4  # snnTorch's NIR export/import convention
SUPPORTED_NODES = ("Input", "Output", "Linear", "Affine", "CubaLIF", "LIF", "Flatten (1-D)", "recurrent subgraph")


def _cuba_node(params, size: int, dt: float):
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
    ones = np.ones(size)
    # the bias is added to v each step (Lava units: u is scaled by 64, v's bias is not)
    v_leak = params.effective_bias / 64.0 / (1.0 - beta)
    return nir.CubaLIF(
        tau_syn=ones * tau_syn,
        tau_mem=ones * tau_mem,
        r=ones * tau_mem / dt,
        v_leak=ones * v_leak,
        v_threshold=ones * float(params.vth),
        w_in=ones * tau_syn / dt,
        v_reset=np.zeros(size),
    )


def to_nir(model: LoihiNetwork, dt: float = NIR_DT):
    """The float NIR graph of a Loihi network (see module doc)."""
    import nir

    if model.convs:
        raise NeuromemError("NIR export of a chain with convolutions (an N-MNIST cell) is not implemented yet; "
                            "export it with --to lava")

    nodes = {"input": nir.Input(input_type={"input": np.array([model.config.input_size])})}
    edges, previous = [], "input"
    for index, layer in enumerate(model.layers):
        weight, recurrent = layer.integer_weights()
        scale = 2.0 ** layer.neuron.weight_exp
        linear, neuron = f"layer{index}.linear", f"layer{index}.lif"
        nodes[linear] = nir.Linear(weight=(weight.detach().double().numpy() * scale))
        nodes[neuron] = _cuba_node(layer.neuron, layer.out_features, dt)
        edges += [(previous, linear), (linear, neuron)]
        if recurrent is not None:
            rec = f"layer{index}.w_rec"
            nodes[rec] = nir.Linear(weight=recurrent.detach().double().numpy() * 2.0**layer.recurrent_exp)
            edges += [(neuron, rec), (rec, neuron)]
        previous = neuron
    nodes["output"] = nir.Output(output_type={"output": np.array([model.layers[-1].out_features])})
    edges.append((previous, "output"))
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


class NIRNetwork(nn.Module):
    """A chain of neuromem spiking stages built from a NIR graph; time-major (T, batch, features)."""

    def __init__(self, stages: list[nn.Module], names: list[str]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.names = names

    def run(self, inputs: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """All stages' outputs and the last spiking stage's final membrane (batch, out)."""
        from neuromem.neurons.functional.neuron import neuron_sequence
        from neuromem.neurons.models import neuron_of

        outputs, membrane, x = [], None, inputs
        for stage in self.stages:
            if isinstance(stage, SpikingLinear):
                x, state = neuron_sequence(neuron_of(stage.neuron), stage.project(x), stage.neuron, stage.recurrent)
                membrane = state.membrane
            else:
                x = stage(x)
            outputs.append(x)
        return outputs, membrane

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


def _neuron_stage(name: str, node, weight: np.ndarray, bias: np.ndarray | None, recurrent: np.ndarray | None, dt: float):
    """SpikingLinear equivalent of Linear/Affine -> (Cuba)LIF with optional recurrent weights."""
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
    out_features, in_features = weight.shape
    stage = SpikingLinear(
        in_features, out_features, neuron=kind, recurrent=recurrent is not None,
        beta=beta, threshold=threshold, reset="zero", **overrides,
    )
    with torch.no_grad():
        stage.synapse.weight.copy_(torch.as_tensor(weight * gain, dtype=torch.float32))
        stage.synapse.bias.copy_(torch.as_tensor((bias if bias is not None else np.zeros(out_features)) * gain, dtype=torch.float32))
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


def from_nir(graph_or_path, dt: float = NIR_DT) -> NIRNetwork:
    """neuromem layers for a NIR graph (or .nir path), discretised with time step `dt` (seconds).

    snnTorch (and neuromem's own export) write time constants for dt = 1e-4 s.
    Norse 1.1.0's `to_nir` writes tau = dt_norse / tau_mem_inv (not 1 / tau_mem_inv), so its
    graphs reproduce the Norse module with dt = dt_norse ** 2 (1e-6 for Norse's default 1e-3).
    """
    import nir

    graph = read_nir(graph_or_path) if isinstance(graph_or_path, (str, Path)) else graph_or_path
    if not isinstance(graph, nir.NIRGraph):
        raise NeuromemError(f"expected a NIR graph, got {_kind(graph)}")
    nodes, edges = graph.nodes, list(dict.fromkeys(tuple(e) for e in graph.edges))
    successors: dict[str, list[str]] = {k: [] for k in nodes}
    for source, target in edges:
        if source not in nodes or target not in nodes:
            raise NeuromemError(f"NIR edge {source} -> {target} names a node the graph does not have")
        successors[source].append(target)
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise NeuromemError(f"NIR graph has {len(inputs)} Input nodes; neuromem imports single-input chains")

    # a Linear whose only edges are neuron -> Linear -> same neuron is that neuron's recurrent weight
    recurrent_of: dict[str, str] = {}
    for key, node in nodes.items():
        if isinstance(node, (nir.Linear, nir.Affine)) and len(successors[key]) == 1:
            target = successors[key][0]
            sources = [s for s, t in edges if t == key]
            if sources == [target] and isinstance(nodes[target], (nir.CubaLIF, nir.LIF)):
                recurrent_of[target] = key

    stages, names = [], []
    pending: tuple[np.ndarray, np.ndarray | None] | None = None
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
        if isinstance(node, (nir.Linear, nir.Affine)):
            if pending is not None:
                raise NeuromemError(f"NIR node '{name}': two weight layers in a row are not supported")
            pending = _affine_parts(node)
        elif isinstance(node, (nir.CubaLIF, nir.LIF, nir.NIRGraph)):
            if pending is None:
                raise NeuromemError(f"NIR node '{name}': a neuron layer without a weight layer before it is not supported")
            if isinstance(node, nir.NIRGraph):
                neuron, recurrent = _recurrent_subgraph(name, node)
            else:
                neuron = node
                rec_key = recurrent_of.get(name)
                recurrent = _affine_parts(nodes[rec_key])[0] if rec_key else None
            stages.append(_neuron_stage(name, neuron, pending[0], pending[1], recurrent, dt))
            names.append(name)
            pending = None
        elif isinstance(node, nir.Flatten):
            pass  # time-major 1-D features are already flat
        else:
            raise _unsupported(name, node)
        current = name
    if pending is not None:  # a trailing weight layer: non-spiking linear output
        weight, bias = pending
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
            if bias is not None:
                linear.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
        stages.append(linear)
        names.append("linear")
    if not stages:
        raise NeuromemError("NIR graph has no layers neuromem can import")
    return NIRNetwork(stages, names)
