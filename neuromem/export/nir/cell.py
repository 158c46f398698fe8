"""A NIR graph as a neuromem cell: `neuromem import X.nir --out RUN --dataset D`.

The graph must be a chain (Input -> [Conv2d | Linear | Affine] -> neuron -> ... -> Output, `nir.Flatten` of a
whole frame between convolutions and dense layers, recurrent weights on neuron layers; neuromem's own
graphs, snnTorch's and Norse's Sequential ones). Each neuron node is read exactly (`exact=True`): a node
neuromem wrote restores the model and parameters its metadata holds (a subtract reset, a Loihi layer with
its 8-bit weights), any other as the registered model that reads it (lif, cuba). Every layer goes into the
cell's front end (front option front_end="layers", `models.frontends.LayerListFrontEnd`, its records in the
cell's config, its weights in model.pt); the cell's memory is `none`. The readout:

- a final layer that never fires (threshold at least 1e30, neuromem's IF integrator; a Loihi readout) is the
  readout: the Affine before an integrator is the cell's linear readout on firing rates (the same decision:
  the integrator's final voltage is T times the rate readout), a Loihi readout the cell's Loihi readout;
- a final layer that fires (snnTorch's and Norse's usual output) stays in the front end, and the readout is
  the identity on its firing rates: the decision is the neuron that fired most (ties: the lowest index);
- a final Affine/Linear without neurons is the linear readout on the previous layer's firing rates.

The cell is evaluated on the data set's test split (its data root's, --data-root) and stored as the ablation
grid stores cells (cell.json, model.pt, representations.npz, a row in results.sqlite), so `neuromem
evaluate`, `neuromem engram` and `neuromem export` read it like any trained cell.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from neuromem.errors import NeuromemError
from neuromem.export.nir.export import NIR_DT
from neuromem.export.nir.importer import (
    NEURON_NODES, WEIGHT_NODES, RecurrentNeuron, _affine_parts, as_graph, conv_parts, folded, read_neuron,
    signal_order,
)
from neuromem.neurons.models import NIRNeuron, neuron_of

NEVER_FIRES = 1e30  # a threshold at least this high: a readout, not a spiking layer


@dataclass
class Layer:
    """One synapse -> neurons step of the chain, read exactly."""

    synapse: str
    node: Any  # the NIR synapse node
    neuron: str | None = None
    read: NIRNeuron | None = None
    recurrent: np.ndarray | None = None
    in_shape: tuple[int, ...] = ()

    @property
    def model(self) -> str:
        return neuron_of(self.read.parameters).name

    @property
    def never_fires(self) -> bool:
        from neuromem.neurons.functional.loihi import MAX_VTH

        p = self.read.parameters
        threshold = getattr(p, "threshold", None)
        return (threshold is not None and threshold >= NEVER_FIRES) or (self.model == "loihi" and p.vth >= MAX_VTH)


def chain_of(graph, dt: float) -> tuple[tuple[int, ...], list[Layer]]:
    """(input shape per step, the chain's layers) of a NIR graph; one line naming what is not a chain."""
    graph = folded(as_graph(graph))
    order = signal_order(graph)
    edges = list(dict.fromkeys(tuple(e) for e in graph.edges))
    for name in order:
        following = [t for s, t in edges if s == name]
        if len(following) > 1:
            raise NeuromemError(f"NIR node '{name}' fans out to {following}; neuromem imports chains (one path)")
        if len([s for s, t in edges if t == name]) > 1:
            raise NeuromemError(f"NIR node '{name}' sums several inputs; neuromem imports chains (one path)")
    start = graph.nodes[order[0]]
    shape = tuple(int(d) for d in np.asarray(next(iter(start.input_type.values()))).reshape(-1))
    layers: list[Layer] = []
    current = shape
    for name in order[1:]:
        node = graph.nodes[name]
        pending = layers[-1] if layers and layers[-1].read is None else None
        if isinstance(node, nir.Output):
            break
        if isinstance(node, nir.Flatten):
            if pending is not None:
                raise NeuromemError(f"NIR node '{name}': a Flatten between a weight layer and its neurons is not supported")
            if len(current) > 1 and not (int(node.start_dim) == 0 and int(node.end_dim) in (-1, len(current) - 1)):
                raise NeuromemError(f"NIR node '{name}': Flatten dims {node.start_dim}..{node.end_dim} of a {current} "
                                    "frame; neuromem flattens whole (C, H, W) frames")
            current = (int(np.prod(current)),)
        elif isinstance(node, (*WEIGHT_NODES, nir.Conv2d)):
            if pending is not None:
                raise NeuromemError(f"NIR node '{name}': two weight layers in a row are not supported")
            if isinstance(node, nir.Conv2d):
                conv_parts(node, name)
                if len(current) != 3:
                    raise NeuromemError(f"NIR node '{name}': a Conv2d on inputs of shape {current}")
                with torch.no_grad():
                    parts = conv_parts(node, name)
                    probe = nn.functional.conv2d(torch.zeros(1, *current), torch.as_tensor(parts["weight"]).float(),
                                                 stride=parts["stride"], padding=parts["padding"])
                layers.append(Layer(name, node, in_shape=current))
                current = tuple(int(d) for d in probe.shape[1:])
            else:
                weight, _ = _affine_parts(node, name)
                if len(current) != 1 or weight.shape[1] != current[0]:
                    raise NeuromemError(f"NIR node '{name}': a {weight.shape[1]}-input weight on inputs of shape {current}")
                layers.append(Layer(name, node, in_shape=current))
                current = (int(weight.shape[0]),)
        elif isinstance(node, (*NEURON_NODES, RecurrentNeuron)):
            if pending is None:
                raise NeuromemError(f"NIR node '{name}': a neuron layer without a weight layer before it is not supported")
            neuron = node.neuron if isinstance(node, RecurrentNeuron) else node
            pending.neuron, pending.read = name, read_neuron(neuron, dt, exact=True, name=name)
            if isinstance(node, RecurrentNeuron):
                if isinstance(pending.node, nir.Conv2d):
                    raise NeuromemError(f"NIR node '{name}': a recurrent weight on a convolutional layer is not supported")
                pending.recurrent = np.asarray(node.weight, dtype=np.float64)
        else:
            raise NeuromemError(f"NIR node '{name}' of type {type(node).__name__} has no place in a chain here")
    if not layers:
        raise NeuromemError("NIR graph has no layers neuromem can import")
    if layers[-1].read is None and isinstance(layers[-1].node, nir.Conv2d):
        raise NeuromemError(f"NIR node '{layers[-1].synapse}': the graph ends in a Conv2d without neurons")
    return shape, layers


def _weights(layer: Layer) -> tuple[np.ndarray, np.ndarray | None]:
    gain = layer.read.gain if layer.read is not None else 1.0
    if isinstance(layer.node, nir.Conv2d):
        parts = conv_parts(layer.node, layer.synapse)
        return parts["weight"] * gain, parts["bias"] * gain
    weight, bias = _affine_parts(layer.node, layer.synapse)
    return weight * gain, None if bias is None else bias * gain


def _record(layer: Layer) -> dict[str, Any]:
    """The LayerListFrontEnd record of a layer."""
    params = dataclasses.asdict(layer.read.parameters)
    record: dict[str, Any] = {"neuron": layer.model, "parameters": params, **dict(layer.read.layer)}
    if isinstance(layer.node, nir.Conv2d):
        parts = conv_parts(layer.node, layer.synapse)
        out_channels, in_channels, kernel, _ = parts["weight"].shape
        return {"kind": "conv", "in": int(in_channels), "out": int(out_channels), "kernel": int(kernel),
                "stride": parts["stride"], "padding": parts["padding"], **record}
    weight, _ = _affine_parts(layer.node, layer.synapse)
    return {"kind": "linear", "in": int(weight.shape[1]), "out": int(weight.shape[0]),
            "recurrent": layer.recurrent is not None, **record}


@dataclass
class Imported:
    """A graph's chain as a cell: the front-end records, where each layer's weights go, and the readout."""

    input_shape: tuple[int, ...]
    records: list[dict[str, Any]]
    front: list[Layer]
    readout: Layer | None  # None: the identity on the last layer's firing rates
    neuron: str
    classes: int
    how: str  # the readout rule applied, for the report


def plan(graph, dt: float) -> Imported:
    """How a graph's chain becomes a cell (see the module doc); one line for what has no cell form."""
    shape, layers = chain_of(graph, dt)
    last = layers[-1]
    if last.read is None:
        front, readout, how = layers[:-1], last, f"'{last.synapse}' (no neurons after it) reads the firing rates"
    elif last.never_fires:
        p = last.read.parameters
        if last.model != "loihi" and not (getattr(p, "beta", None) == 1.0 and getattr(p, "alpha", 0.0) == 0.0):
            raise NeuromemError(
                f"NIR node '{last.neuron}': a readout that never fires but leaks (beta {getattr(p, 'beta', '?')}) has no "
                "neuromem form; neuromem's float readout reads firing rates (an integrating IF, or a trailing Affine)")
        front, readout, how = layers[:-1], last, f"'{last.neuron}' (never fires) is the readout"
    else:
        front, readout, how = layers, None, f"the most spikes of '{last.neuron}' decide (identity readout)"
    if not front:
        raise NeuromemError("NIR graph has a readout but no spiking layer before it; neuromem cells need one")
    models = {layer.model for layer in front}
    if "loihi" in models and (len(models) > 1 or readout is None or readout.model != "loihi"):
        raise NeuromemError("NIR graph mixes Loihi layers with others, or has no Loihi readout after them; a Loihi "
                            "cell is a chain of Loihi layers and a Loihi readout")
    if readout is not None and readout.read is None and "loihi" in models:
        raise NeuromemError("NIR graph: a Loihi chain's readout is a Loihi layer that never fires")
    classes = int(_weights(readout)[0].shape[0]) if readout is not None else int(_record(front[-1])["out"])
    if readout is not None:
        width = int(_record(front[-1])["out"])
        if int(_weights(readout)[0].shape[1]) != width:
            raise NeuromemError(f"NIR readout '{readout.synapse}' reads {_weights(readout)[0].shape[1]} inputs, the "
                                f"layer before it has {width}")
    return Imported(shape, [_record(layer) for layer in front], front, readout, front[0].model, classes, how)


def _check_loihi_readout(readout: Layer) -> None:
    from neuromem.neurons.functional.loihi import LoihiParameters, MAX_VTH
    from neuromem.neurons.loihi import READOUT_DEFAULTS

    expected = LoihiParameters(**{**READOUT_DEFAULTS, "vth": MAX_VTH})
    p = readout.read.parameters
    fields = ("du", "dv", "vth", "bias_mant", "bias_exp", "weight_exp")
    if any(getattr(p, f) != getattr(expected, f) for f in fields):
        raise NeuromemError(f"NIR node '{readout.neuron}': a Loihi readout with {', '.join(f'{f}={getattr(p, f)}' for f in fields)}; "
                            f"neuromem's Loihi cells read out with {', '.join(f'{f}={getattr(expected, f)}' for f in fields)}")


def build(imported: Imported, dataset: str, network_classes: int):
    """The cell's MemoryNetwork with the graph's weights."""
    from neuromem.models import build_network

    front_options = {"front_end": "layers", "layers": imported.records}
    network = build_network({dataset: imported.input_shape}, {dataset: network_classes}, "none",
                            neuron=imported.neuron, front_options=front_options)
    layers = list(network.front_ends[dataset].layers)
    with torch.no_grad():
        for target, layer in zip(layers, imported.front):
            weight, bias = _weights(layer)
            target.synapse.weight.copy_(torch.as_tensor(weight.reshape(target.synapse.weight.shape)))
            if target.synapse.bias is not None:
                target.synapse.bias.copy_(torch.as_tensor(bias if bias is not None else np.zeros(weight.shape[0])))
            elif bias is not None and not np.allclose(bias, 0.0):
                raise NeuromemError(f"NIR node '{layer.synapse}': a bias on a Loihi synapse (Loihi synapses have none)")
            if layer.recurrent is not None:
                gain = layer.read.gain if layer.read.recurrent_gain is None else layer.read.recurrent_gain
                target.recurrent.copy_(torch.as_tensor(layer.recurrent * gain))
        readout = network.readouts[dataset]
        if imported.readout is None:
            readout.weight.copy_(torch.eye(imported.classes))
            readout.bias.zero_()
        else:
            weight, bias = _weights(imported.readout)
            if imported.neuron == "loihi":
                _check_loihi_readout(imported.readout)
                readout.synapse.weight.copy_(torch.as_tensor(weight))
            else:
                readout.weight.copy_(torch.as_tensor(weight))
                readout.bias.copy_(torch.as_tensor(bias if bias is not None else np.zeros(weight.shape[0])))
    return network.eval()


def import_cell(graph_path: Path, out_dir: Path, dataset: str | None = None, data_root: Path | None = None,
                time_bins: int | None = None, dt: float | None = None) -> tuple[Path, dict[str, Any], list[str]]:
    """Build the cell of a NIR graph, evaluate it on `dataset`'s test split and store it under `out_dir`;
    (cell folder, metrics, report lines)."""
    import json

    from neuromem.data import get_spec, resolve_data_root
    from neuromem.data.cache import root_fingerprint
    from neuromem.data.registry import dataset_names
    from neuromem.neurons.models.nir_forms import METADATA_KEY
    from neuromem.study.store import ResultStore, check_out_is_ours
    from neuromem.train import trainer
    from neuromem.train.config import CellConfig
    from neuromem.train.provenance import current_provenance
    from neuromem.train.tasks import TASKS, concept_of

    started = time.perf_counter()
    graph = as_graph(Path(graph_path))
    from neuromem.export.nir.export import graph_senses

    senses = graph_senses(graph)
    inputs = [k for k, n in graph.nodes.items() if type(n).__name__ == "Input"]
    if senses or len(inputs) > 1:
        raise NeuromemError(f"{graph_path} has {len(inputs)} inputs ({', '.join(inputs)}{': a cell of several senses' if senses else ''}); "
                            "`neuromem import` reads one-input graphs (export a cell of one data set, e.g. --modality shd)")
    try:
        recorded = json.loads((graph.metadata or {}).get(METADATA_KEY) or "{}")
    except (TypeError, ValueError):
        recorded = {}
    recorded = recorded if isinstance(recorded, dict) else {}
    dataset = dataset or recorded.get("dataset")
    names = list(dataset_names())
    if not dataset:
        raise NeuromemError(f"{graph_path} does not say which data set it reads; give --dataset (valid: {', '.join(names)})")
    if dataset not in names or dataset not in TASKS or len(TASKS[dataset].datasets) != 1:
        raise NeuromemError(f"--dataset {dataset!r} is not known; valid: {', '.join(n for n in names if n in TASKS)}")
    dt = float(recorded.get("dt") or NIR_DT) if dt is None else float(dt)
    if time_bins is None and recorded.get("time_bins"):
        time_bins = int(recorded["time_bins"])
    imported = plan(graph, dt)
    spec = get_spec(dataset)
    if tuple(imported.input_shape) != tuple(spec.input_shape):
        raise NeuromemError(f"{graph_path} takes inputs of shape {imported.input_shape} per step; the {dataset} data set "
                            f"gives {tuple(spec.input_shape)}: give the --dataset it was trained on")
    if imported.classes != spec.num_classes:
        raise NeuromemError(f"{graph_path} decides among {imported.classes} outputs; the {dataset} data set has "
                            f"{spec.num_classes} classes: give the --dataset it was trained on")
    if data_root is None:
        data_root, _ = resolve_data_root(None)
    data_root = Path(data_root)
    digest = hashlib.sha256(Path(graph_path).read_bytes()).hexdigest()[:16]
    records = [dict(r) for r in imported.records]
    config = CellConfig(modality=dataset, memory="none", neuron=imported.neuron, time_bins=time_bins,
                        front_options=(("front_end", "layers"), ("layers", records), ("source", digest)),
                        data_fingerprint=root_fingerprint(data_root), epochs=0)
    network = build(imported, dataset, spec.num_classes)
    task = TASKS[dataset]
    test = trainer._load(task, config, data_root, "test")[dataset]
    result = trainer._evaluate(network, test)
    accuracy = float((result["predictions"] == test.labels).mean())
    metrics = {
        f"test_accuracy_{dataset}": accuracy, "test_accuracy": accuracy,
        "parameters": sum(p.numel() for p in network.parameters()),
        "imported_from": str(Path(graph_path).resolve()), "graph_digest": digest, "readout": imported.how,
        "provenance": current_provenance(config.memory), "wall_seconds": round(time.perf_counter() - started, 2),
    }
    representations = {
        f"{dataset}/representations": result["representations"], f"{dataset}/labels": test.original_labels,
        f"{dataset}/digits": concept_of(dataset, test.original_labels), f"{dataset}/predictions": result["predictions"],
    }
    out_dir = Path(out_dir)
    check_out_is_ours(out_dir)
    store = ResultStore(out_dir)
    store.set_run_info(data_root=str(data_root.resolve()))
    store.record(config, metrics, "ok", representations, {dataset: network.state_dict()})
    layers = " -> ".join(f"{r['kind']} {r['out']}{'r' if r.get('recurrent') else ''} ({r['neuron']})" for r in records)
    lines = [f"imported {graph_path}: {'x'.join(map(str, imported.input_shape))} -> {layers} -> {imported.classes} "
             f"classes; readout: {imported.how}",
             f"cell {store.cell_dir(config.cell_id)}",
             f"test accuracy on {dataset} ({len(test.labels)} samples at {data_root}): {100 * accuracy:.2f}%"]
    return store.cell_dir(config.cell_id), metrics, lines
