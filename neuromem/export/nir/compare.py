"""A written NIR graph run in every simulator that installs here, against neuromem's own runs.

`nir_agreement(model, inputs, labels)` exports the chain (a Loihi chain or a float cell's `SpikingChain`)
and runs, on the same inputs:

- the cell itself: a Loihi chain's fixed-point model (bit-exact with Lava; its layer i's spikes come
  i + 1 steps later, Lava's synaptic delay, aligned here), or a float cell's own layers and readout;
- the graph in neuromem as NIR states it (`importer.from_nir`), every simulator's reference;
- the graph in each simulator of `SIMULATORS` (Norse, snnTorch, Sinabs, Rockpool, Spyx) that is installed:
  spikes per neuron layer and the readout's voltage against neuromem's run of the graph, decisions
  against it and against the cell, accuracy where labels are given. One that cannot build or run the
  graph is reported with its reason in one line (a known limit of its importer, or the error it raised).

Decisions are the argmax of the readout's final voltage (the last neuron node, which never fires).

What each importer reads differently from the NIR graph (checked on norse 1.1.0, snntorch 1.0.0,
sinabs 3.1.3, rockpool 3.1.0, spyx 1.0.0 with nir 1.0.8 and nirtorch 2.6) is in its `note`.
Norse and snnTorch map `nir.Flatten` to `torch.nn.Flatten(start_dim, end_dim)` on the batched
tensor, which with NIR's batch-free start_dim 0 would fold the batch in: a graph with a Flatten is fed
to them one sample at a time (unbatched steps).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.metadata
import importlib.util
import io
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from neuromem.errors import NeuromemError
from neuromem.export.nir.export import NIR_DT, SenseChains, SpikingChain, Written, build_graph, sense_graph
from neuromem.export.nir.importer import (
    NEURON_NODES, RecurrentNeuron, _recurrent_weights, _torch_name, as_graph, folded, from_nir, signal_order,
)


def neuron_layers(graph) -> list[str]:
    """The graph's neuron nodes in signal order."""
    graph = folded(as_graph(graph))
    return [k for k in signal_order(graph) if isinstance(graph.nodes[k], (*NEURON_NODES, RecurrentNeuron))]


def _has(graph, kind) -> bool:
    return any(isinstance(n, kind) for n in graph.nodes.values())


def _recurrent(graph) -> bool:
    import nir

    return bool(_recurrent_weights(graph)) or _has(graph, nir.NIRGraph)


def _samples(graph, inputs: torch.Tensor) -> list[torch.Tensor]:
    """Batched (T, batch, ...) inputs as the torch importers can take them: whole, or one unbatched sample at a
    time where the graph has a Flatten (they apply NIR's batch-free start_dim to the batched tensor)."""
    import nir

    if _has(graph, nir.Flatten):
        return [inputs[:, i] for i in range(inputs.shape[1])]
    return [inputs]


def _stack(runs: list[list[torch.Tensor]], batched: bool) -> torch.Tensor:
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
                    record.append(s.detach().float())
                volts.append(voltage.detach().float())
            for record, steps_of_layer in zip(spikes, steps):
                record.append(steps_of_layer)
            voltages.append(volts)
    batched = len(samples) == 1 and samples[0].dim() == inputs.dim()
    return [_stack(r, batched) for r in spikes], _stack(voltages, batched)


def _voltage(state) -> torch.Tensor:
    """The membrane `v` inside a Norse state (CubaLIF: (synapse, neuron); IF and LIF: the neuron's)."""
    while isinstance(state, (tuple, list)) and not hasattr(state, "v"):
        state = state[-1]
    return state.v


# ------------------------------------------------------------------ the simulators


def _buildable(graph, refusal: Callable) -> tuple[Any, list[str]]:
    """(graph, its neuron layers) for a peer whose importer can build it; else the peer's one-line refusal."""
    graph = as_graph(graph)
    why = refusal(graph)
    if why:
        raise NeuromemError(why)
    return graph, neuron_layers(graph)


def _record_outputs(net, layers: list[str]) -> tuple[dict, dict, list]:
    """(modules by name, every neuron layer's last output by layer, the hooks recording them: remove when done)."""
    modules = dict(net.named_modules())
    seen: dict[str, torch.Tensor] = {}
    hooks = [modules[_torch_name(name)].register_forward_hook(
        lambda _m, _i, out, name=name: seen.__setitem__(name, out[0] if isinstance(out, tuple) else out))
        for name in layers]
    return modules, seen, hooks


def run_norse(graph, inputs: torch.Tensor, dt: float = NIR_DT) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The graph in Norse (`norse.torch.from_nir(graph, dt=dt)`): spikes of every neuron layer (T, batch, ...)
    and the last layer's voltage (T, batch, out), from time-major inputs (T, batch, ...)."""
    import logging

    import norse.torch as norse

    graph = as_graph(graph)
    layers = neuron_layers(graph)
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # Norse warns IF's r != 1 is unused
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nirtorch.load's deprecation, which Norse 1.1.0 calls
        net = norse.from_nir(graph, dt=dt, ignore_warnings=True)
    carried = {}

    def start() -> None:
        carried["state"] = None

    def step(x_t: torch.Tensor):
        _, state = net(x_t, carried["state"])
        carried["state"] = state
        return [state.cache[_torch_name(name)] for name in layers], _voltage(state.state[_torch_name(layers[-1])])

    return _record_steps(graph, inputs, layers, start, step)


def snntorch_refusal(graph) -> str | None:
    """Why snnTorch 1.0.0's importer cannot build the graph, or None."""
    import nir

    if _recurrent(graph):
        return ("snnTorch 1.0.0's importer (on nirtorch 2.6) cannot build recurrent layers: it nests them as "
                "sub-graphs, which nirtorch's interpreter does not run")
    if any(isinstance(n, nir.IF) and not np.allclose(n.r, 1.0) for n in graph.nodes.values()):
        return ("snnTorch 1.0.0 imports a nir.IF only with r = 1, and as a Leaky neuron with beta 0.9 (it leaks): "
                "it cannot run the float readout's integrator (an IF with r = 1/dt)")
    return None


def run_snntorch(graph, inputs: torch.Tensor, dt: float = NIR_DT) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The graph in snnTorch (`snntorch.import_nir.import_from_nir`, which assumes dt = 1e-4), as `run_norse`;
    a NeuromemError for a graph its importer cannot build (`snntorch_refusal`)."""
    from snntorch import import_nir, utils

    graph, layers = _buildable(graph, snntorch_refusal)
    with contextlib.redirect_stdout(io.StringIO()):  # the importer prints its progress
        net = import_nir.import_from_nir(copy.deepcopy(graph))  # it rewrites the graph it is given
    modules, seen, hooks = _record_outputs(net, layers)

    def step(x_t: torch.Tensor):
        net(x_t)
        return [seen[name].clone() for name in layers], modules[_torch_name(layers[-1])].mem.clone()

    try:
        return _record_steps(graph, inputs, layers, lambda: utils.reset(net), step)
    finally:
        for hook in hooks:
            hook.remove()


def sinabs_refusal(graph) -> str | None:
    import nir

    unread = sorted({type(n).__name__ for n in graph.nodes.values() if isinstance(n, (nir.CubaLIF, nir.Linear))})
    if unread or _recurrent(graph):
        return (f"Sinabs 3.1.3's importer has no {' or '.join(unread) or 'recurrent'} node (it reads Affine, Conv2d, "
                "LIF, IF, LI; neuromem writes lif and Loihi neurons as CubaLIF, Loihi synapses as Linear)")
    return None


def run_sinabs(graph, inputs: torch.Tensor, dt: float = NIR_DT) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The graph in Sinabs (`sinabs.from_nir`, its layers on (batch x T, ...) tensors)."""
    import sinabs

    graph, layers = _buildable(graph, sinabs_refusal)
    steps, batch = inputs.shape[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = sinabs.from_nir(copy.deepcopy(graph), batch_size=batch, num_timesteps=steps)
    modules, seen, hooks = _record_outputs(net, layers)
    flat = inputs.float().transpose(0, 1).reshape(batch * steps, *inputs.shape[2:])  # (batch x T, ...)
    try:
        with torch.no_grad():
            net(flat)
    finally:
        for hook in hooks:
            hook.remove()

    def time_major(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(batch, steps, *x.shape[1:]).transpose(0, 1)

    last = modules[_torch_name(layers[-1])]
    return [time_major(seen[name]) for name in layers], time_major(last.v_mem.reshape(batch * steps, -1)) \
        if last.v_mem.shape[0] == batch * steps else last.v_mem.unsqueeze(0).expand(steps, *last.v_mem.shape)


def rockpool_refusal(graph) -> str | None:
    import nir

    unread = sorted({type(n).__name__ for n in graph.nodes.values()
                     if isinstance(n, (nir.Conv2d, nir.Flatten, nir.IF, nir.LIF))})
    if unread:
        return (f"Rockpool 3.1.0's importer has no {', '.join(unread)} node (it reads Linear, Affine, CubaLIF, LI and "
                "snnTorch's recurrent subgraphs)")
    return None


def run_rockpool(graph, inputs: torch.Tensor, dt: float = NIR_DT) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The graph in Rockpool (`rockpool.nn.modules.from_nir`, torch backend, batch-major (batch, T, ...) runs)."""
    from rockpool.nn.modules import from_nir as rockpool_from_nir

    graph, layers = _buildable(graph, rockpool_refusal)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = rockpool_from_nir(copy.deepcopy(graph))
    modules = dict(net.named_modules())
    seen: dict[str, torch.Tensor] = {}
    voltages: dict[str, torch.Tensor] = {}

    def hook(module, _inputs, out, name):
        seen[name] = out[0] if isinstance(out, tuple) else out
        record = getattr(module, "_record_dict", None) or {}
        if "vmem" in record:
            voltages[name] = record["vmem"]

    hooks = []
    for name in layers:
        module = modules[_torch_name(name)]
        if hasattr(module, "_record"):
            module._record = True
        hooks.append(module.register_forward_hook(lambda m, i, o, name=name: hook(m, i, o, name)))
    try:
        with torch.no_grad():
            net(inputs.float().transpose(0, 1))
    finally:
        for handle in hooks:
            handle.remove()
    last = layers[-1]
    if last not in voltages:
        raise NeuromemError("Rockpool 3.1.0 ran the graph but did not record the readout's membrane")
    return [seen[name].transpose(0, 1) for name in layers], voltages[last].transpose(0, 1)


def spyx_refusal(graph) -> str | None:
    import nir

    if any(isinstance(n, nir.CubaLIF) and np.asarray(n.v_threshold).ndim > 1 for n in graph.nodes.values()):
        return ("Spyx 1.0.0's CuBaLIF sizes its state for one-dimensional layers only (its initial_state doubles every "
                "dimension of a convolution's (H, W, C) neurons), so a convolutional CubaLIF layer fails")
    return None


def run_spyx(graph, inputs: torch.Tensor, dt: float = NIR_DT) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The graph in Spyx (`spyx.nir.from_nir(graph, x, dt, return_all_states=True)`, JAX). Its neurons emit at
    step t the spike of the voltage after step t - 1 (`spike = H(V - threshold)` before the update), so the
    spikes are read from its voltages that way; the readout's voltage is its last layer's."""
    import jax.numpy as jnp
    import spyx.nir

    graph, layers = _buildable(graph, spyx_refusal)
    x = inputs.float().numpy()
    if x.ndim == 5:  # spyx runs convolutions channels-last
        x = x.transpose(0, 1, 3, 4, 2)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, (_, states) = spyx.nir.from_nir(copy.deepcopy(graph), jnp.asarray(x), dt=dt, return_all_states=True)
    states = [np.asarray(s) for s in states if s is not None]
    if len(states) != len(layers):
        raise NeuromemError(f"Spyx 1.0.0 built {len(states)} neuron layers from the graph's {len(layers)}")
    spikes, voltage = [], None
    for state, name in zip(states, layers):
        node = graph.nodes[name]
        if isinstance(node, __import__("nir").NIRGraph):
            node = next(n for n in node.nodes.values() if isinstance(n, NEURON_NODES))
        threshold = np.asarray(node.v_threshold, dtype=np.float64)
        if state.shape[-1] == 2 * threshold.reshape(-1).shape[0] and _is_cuba(node):
            state = state[..., : state.shape[-1] // 2]  # (V, I)
        if state.ndim == 5:
            state = state.transpose(0, 1, 4, 2, 3)  # back to (C, H, W)
        fired = np.zeros_like(state)
        fired[1:] = state[:-1] > threshold
        spikes.append(torch.as_tensor(fired))
        voltage = torch.as_tensor(state.copy())
    return spikes, voltage


def _is_cuba(node) -> bool:
    import nir

    return isinstance(node, nir.CubaLIF) or (isinstance(node, nir.NIRGraph) and _has(node, nir.CubaLIF))


@dataclass(frozen=True)
class Simulator:
    name: str
    distribution: str  # the package pip installs
    run: Callable  # (graph, time-major inputs, dt) -> (spikes per neuron layer, readout voltages (T, batch, C))
    refusal: Callable  # graph -> why its importer cannot build the graph (one clause), or None
    note: str = ""  # how its importer reads a graph differently from NIR (one clause), if it does
    delayed: bool = False  # its layer i emits a spike i + 1 steps later than NIR says (compared delay-aligned)
    install: str = ""  # how it installs beside neuromem, where plain `pip install NAME` does not (one clause)


SIMULATORS: dict[str, Simulator] = {
    "norse": Simulator("norse", "norse", run_norse, lambda graph: None,
                       "reads a nir.LIF without its r; neuromem writes CubaLIF nodes, which it reads in full",
                       install="`pip install --no-deps norse==1.1.0`: it asks for torchvision, which does not import "
                               "beside the CPU torch (`make install` does this)"),
    "snntorch": Simulator("snntorch", "snntorch", run_snntorch, snntorch_refusal, "assumes dt = 1e-4 s"),
    "sinabs": Simulator("sinabs", "sinabs", run_sinabs, sinabs_refusal,
                        "reads tau in time steps with exponential decay, multi-spike, subtract reset",
                        install="`pip install --no-deps sinabs==3.1.3 pbr`: it asks for nir<=1.0.4, and reads NIR "
                                "1.0.8 graphs (`make install` does this)"),
    "rockpool": Simulator("rockpool", "rockpool", run_rockpool, rockpool_refusal,
                          "reads dt from tau_mem / (1 + r), exponential decay, subtract reset",
                          install="`pip install rockpool==3.1.0` (in the dev extras)"),
    "spyx": Simulator("spyx", "spyx", run_spyx, spyx_refusal,
                      "emits a spike one step after its voltage crossed (compared delay-aligned), resets by "
                      "subtraction, runs frames channels-last", delayed=True,
                      install="`pip install spyx==1.0.0` (with jax; in the dev extras)"),
}


def simulator_version(name: str) -> str | None:
    """The installed version of a simulator's package (None: not installed here)."""
    simulator = SIMULATORS[name]
    if importlib.util.find_spec(simulator.name) is None:
        return None
    try:
        return importlib.metadata.version(simulator.distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


# ------------------------------------------------------------------ the report


@dataclass
class SimulatorAgreement:
    """One simulator's run of the graph against neuromem's run of the same graph (and the cell)."""

    name: str
    version: str | None = None
    refused: str | None = None
    mismatches: list[int] = field(default_factory=list)  # spike entries (neuron x step x sample) that differ, per layer
    decisions_equal: float | None = None  # fraction of samples with neuromem's decision on the graph
    decisions_vs_cell: float | None = None  # ... with the cell's own decision
    voltage_error: float | None = None  # max |v - v_neuromem| of the readout over all steps / max |v_neuromem|
    accuracy: float | None = None  # of its decisions, where labels were given
    note: str = ""


@dataclass
class NIRAgreement:
    """The exported graph run on the same inputs by the cell itself, by neuromem (the graph as NIR states it)
    and by every simulator."""

    samples: int
    steps: int
    layers: list[str]
    spikes: list[int]  # spikes of neuromem's run of the graph, per neuron layer
    cell: str  # what the cell's own run is ("Loihi fixed-point chain", "cell")
    cell_mismatches: list[int]  # neuromem's graph run vs the cell, per layer (a Loihi chain delay-aligned)
    cell_spikes: list[int]
    decisions_vs_cell: float  # neuromem's graph run's decisions vs the cell's
    simulators: list[SimulatorAgreement]
    decisions_vs_cell_aligned: float | None = None  # Loihi: the graph's decision at step T - 1 - layers
    # float cells: the graph read with its neuromem metadata (as `neuromem import` reads it) vs the cell
    exact_mismatches: list[int] | None = None
    exact_decisions: float | None = None
    cell_accuracy: float | None = None
    graph_accuracy: float | None = None
    caveats: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        shown = ", ".join(f"{n} {s}" for n, s in zip(self.layers, self.spikes))
        out = [f"NIR graph on {self.samples} samples x {self.steps} steps; neuromem's run of the graph (as NIR "
               f"states it), spikes per neuron layer: {shown}"]
        out += [f"  the graph does not say: {c}" for c in self.caveats]
        against = ", ".join(f"{m}/{s}" for m, s in zip(self.cell_mismatches, self.cell_spikes))
        aligned = ("" if self.decisions_vs_cell_aligned is None else
                   f" ({100 * self.decisions_vs_cell_aligned:.1f}% at the delay-aligned step)")
        out.append(f"  vs the {self.cell}{' (delay-aligned)' if self.decisions_vs_cell_aligned is not None else ''}: "
                   f"mismatching spike entries / its spikes per layer: {against}; decisions equal "
                   f"{100 * self.decisions_vs_cell:.1f}%{aligned}")
        if self.exact_mismatches is not None:
            out.append(f"  the graph read with its neuromem metadata (as `neuromem import` reads it) vs the cell: "
                       f"mismatching spike entries per layer {self.exact_mismatches}; decisions equal "
                       f"{100 * self.exact_decisions:.1f}%")
        for sim in self.simulators:
            label = f"{sim.name} {sim.version}" if sim.version else sim.name
            if sim.refused:
                out.append(f"  {label}: not run: {sim.refused}")
                continue
            out.append(f"  {label}: mismatching spike entries per layer {sim.mismatches}; decisions equal "
                       f"{100 * sim.decisions_equal:.1f}% (neuromem's run of the graph), "
                       f"{100 * sim.decisions_vs_cell:.1f}% (the {self.cell}); readout voltage max error "
                       f"{sim.voltage_error:.2e} (relative)" + (f"; its importer {sim.note}" if sim.note and
                                                                 sim.decisions_equal < 1.0 else ""))
        if self.cell_accuracy is not None:
            shown = [f"{self.cell} {100 * self.cell_accuracy:.1f}%", f"NIR graph in neuromem {100 * self.graph_accuracy:.1f}%",
                     *(f"{s.name} {100 * s.accuracy:.1f}%" for s in self.simulators if s.accuracy is not None)]
            out.append(f"  accuracy on these samples: {', '.join(shown)}")
        return out

    # the field names of the Loihi-only report this one replaces
    @property
    def fixed_mismatches(self) -> list[int]:
        return self.cell_mismatches

    @property
    def fixed_spikes(self) -> list[int]:
        return self.cell_spikes


def _cell_run(model, inputs, device: torch.device | str = "cpu"
              ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, str, bool]:
    """(time-major inputs as the cell sees them, its spikes per layer, its decisions, what it is, delayed): the
    chain (the cell, or its quantized Loihi chain) run on `device`, everything returned on the CPU, the chain too
    (graphs are written from its weights)."""
    from neuromem.export.model import LoihiNetwork, binary_time_major

    if isinstance(model, LoihiNetwork):
        x = binary_time_major(inputs)
        with torch.no_grad():
            spikes, voltages = model.to(device).run(x.to(device))
        model.cpu()
        return x.float(), [s.cpu() for s in spikes], voltages[-1].argmax(-1).cpu(), "Loihi fixed-point chain", True
    if isinstance(model, SpikingChain):
        x = torch.as_tensor(np.asarray(inputs)).float().transpose(0, 1)
        modules = [model.network] if model.network is not None else [*model.layers, model.readout]
        for module in modules:
            module.to(device)
        spikes, _ = model.run(x.to(device))
        decisions = model.decisions(x.to(device)).cpu()
        for module in modules:
            module.cpu()
        return x, [*(s.cpu() for s in spikes), torch.zeros(0)], decisions, "cell", False
    raise NeuromemError(f"--compare takes a cell's chain, got {type(model).__name__}")


@torch.no_grad()
def _imported_run(graph, dt: float, x: torch.Tensor, device: torch.device | str, exact: bool = False
                  ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The graph in neuromem (`from_nir`) run on `device`: its spikes per neuron node and last membranes, on the CPU."""
    spikes, membranes = from_nir(graph, dt, exact=exact).to(device).spiking_outputs(x.to(device))
    return [s.cpu() for s in spikes], membranes.cpu()


@dataclass
class SensesAgreement:
    """A graph of several senses, each sense's path (`sense_graph`) run on its own test samples."""

    senses: dict[str, NIRAgreement]
    inputs: dict[str, str]  # sense -> its Input node in the graph

    def lines(self) -> list[str]:
        out = []
        for sense, report in self.senses.items():
            out.append(f"sense {sense} (Input '{self.inputs[sense]}', its path of the graph run alone):")
            out += [f"  {line}" for line in report.lines()]
        return out


def senses_agreement(model: SenseChains, inputs, simulators=None, dt: float = NIR_DT, labels=None,
                     device: torch.device | str = "cpu") -> SensesAgreement:
    """`nir_agreement` of each sense: its path taken out of the one graph of every sense, run on that sense's
    inputs ({sense: batch-major (N, T, ...)}); labels ({sense: the data set's labels}) mapped to concepts where the
    cell's readouts decide concepts."""
    written = build_graph(model, dt)
    reports = {}
    for sense, chain in model.chains.items():
        if sense not in inputs:
            continue
        truth = None if labels is None or labels.get(sense) is None else np.asarray(labels[sense])
        if truth is not None and model.concept_labels:
            from neuromem.train.tasks import concept_of

            truth = concept_of(sense, truth)
        own = Written(sense_graph(written.graph, sense), build_graph(chain, dt).caveats)
        reports[sense] = nir_agreement(chain, inputs[sense], simulators, dt, labels=truth, written=own, device=device)
    return SensesAgreement(reports, {sense: sense for sense in reports})


def nir_agreement(model, inputs, simulators=None, dt: float = NIR_DT, labels=None, written: Written | None = None,
                  device: torch.device | str = "cpu"):
    """Export `model` (a LoihiNetwork or a SpikingChain) to NIR and run the graph in neuromem, the cell itself
    and each of `simulators` (default: all of `SIMULATORS`; one not installed, or that cannot build the graph,
    is reported with its reason) on batch-major (N, T, ...) inputs; with `labels`, every run's accuracy too.
    `written`: the graph to run instead of the chain's own (a sense's path of a graph of several senses).
    A SenseChains (a cell of several senses) takes {sense: inputs} and {sense: labels}: `senses_agreement`.
    `device`: where the cell (or its quantized chain) and neuromem's import of the graph run (`--device`); the
    peers' simulators run on the CPU, on the same inputs."""
    if isinstance(model, SenseChains):
        return senses_agreement(model, inputs, simulators, dt, labels, device)
    written = build_graph(model, dt) if written is None else written
    graph = written.graph
    x, cell_spikes, cell_decisions, cell, delayed = _cell_run(model, inputs, device)
    ours, membranes = _imported_run(graph, dt, x, device)
    steps, layers = x.shape[0], neuron_layers(graph)
    mismatches, counts = [], []
    for index, (theirs, mine) in enumerate(zip(cell_spikes, ours)):
        if theirs.numel() == 0:  # a float cell's readout has no spikes of its own
            mismatches.append(int(mine.sum()))
            counts.append(0)
            continue
        delay = index + 1 if delayed else 0
        theirs, mine = theirs[delay:].float(), mine[: steps - delay].float()
        mismatches.append(int((theirs != mine).sum()))
        counts.append(int(theirs.sum()))
    decisions = membranes[-1].argmax(-1)
    aligned = None
    if delayed:
        step = max(steps - 1 - (len(layers) - 1), 0)
        aligned = float((membranes[step].argmax(-1) == cell_decisions).float().mean())
    truth = torch.as_tensor(np.asarray(labels), dtype=torch.long) if labels is not None else None

    def accuracy(found: torch.Tensor) -> float | None:
        return None if truth is None else float((found.cpu() == truth).float().mean())

    report = NIRAgreement(
        samples=int(x.shape[1]), steps=int(steps), layers=layers, spikes=[int(s.sum()) for s in ours], cell=cell,
        cell_mismatches=mismatches, cell_spikes=counts,
        decisions_vs_cell=float((decisions == cell_decisions).float().mean()), simulators=[],
        decisions_vs_cell_aligned=aligned, cell_accuracy=accuracy(cell_decisions), graph_accuracy=accuracy(decisions),
        caveats=written.caveats,
    )
    if isinstance(model, SpikingChain):
        exact, exact_membranes = _imported_run(graph, dt, x, device, exact=True)
        report.exact_mismatches = [int((a != b).sum()) if a.numel() else int(b.sum())
                                   for a, b in zip(cell_spikes, exact)]
        report.exact_decisions = float((exact_membranes[-1].argmax(-1) == cell_decisions).float().mean())
    scale = float(membranes.abs().max()) or 1.0
    for name in SIMULATORS if simulators is None else simulators:
        if name not in SIMULATORS:
            raise NeuromemError(f"simulator {name!r} is not known; valid: {', '.join(SIMULATORS)}")
        simulator, version = SIMULATORS[name], simulator_version(name)
        result = SimulatorAgreement(name, version, note=simulator.note)
        report.simulators.append(result)
        if version is None:
            result.refused = f"not installed here: {simulator.install or f'`pip install {simulator.distribution}`'}"
            continue
        result.refused = simulator.refusal(graph)
        if result.refused:
            continue
        try:
            theirs, voltages = simulator.run(graph, x, dt)
        except NeuromemError as error:
            result.refused = str(error)
            continue
        except Exception as error:  # a peer's importer failing on a graph is a finding, reported in one line
            result.refused = f"its importer failed: {type(error).__name__}: {' '.join(str(error).split())[:160]}"
            continue
        theirs_decisions = voltages[-1].argmax(-1)
        result.mismatches = []
        for index, (a, b) in enumerate(zip(ours, theirs)):
            if b.numel() != a.numel():
                result.mismatches.append(-1)
                continue
            delay = index + 1 if simulator.delayed else 0
            a, b = a.float()[: steps - delay], b.float().reshape(a.shape)[delay:]
            result.mismatches.append(int((a != b).sum()))
        result.decisions_equal = float((theirs_decisions == decisions).float().mean())
        result.decisions_vs_cell = float((theirs_decisions == cell_decisions).float().mean())
        result.voltage_error = float((voltages.reshape(membranes.shape) - membranes).abs().max()) / scale
        result.accuracy = accuracy(theirs_decisions)
    return report
