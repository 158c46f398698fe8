"""NIR for every cell NIR can express (float lif/cuba cells, spiking memories, Loihi chains), NIR graphs back as
neuromem cells (`neuromem import`), and the graph in every simulator installed here."""

import json
import re

import numpy as np
import pytest
import torch

from conftest import train_tiny_cell

from neuromem.errors import NeuromemError
from neuromem.export.nir import NIR_DT, SpikingChain, nir_agreement, read_nir, spiking_chain, to_nir, write_nir
from neuromem.neurons.layers import SpikingConv2d, SpikingLinear
from neuromem.neurons.models import get_neuron, neuron_names, nir_neuron_from, nir_node_of

nir = pytest.importorskip("nir")


def _trained(modality, shape, memory, options, neuron="lif", classes=3, steps=30, seed=0, neuron_params=None):
    """A tiny grid-cell network trained a few steps, and batch-major count inputs."""
    return train_tiny_cell(modality, shape, memory, options, neuron=neuron, classes=classes, steps=steps, seed=seed,
                           neuron_params=neuron_params)


def _cli():
    """neuromem's own command line with every sub-command registered (as `main` does)."""
    from neuromem import cli

    cli._register_commands()
    return cli.app


def test_every_neuron_model_writes_its_nir_node_or_says_why_not():
    for name in neuron_names():
        model = get_neuron(name)
        p = model.parameters()
        if name == "alif":
            with pytest.raises(NeuromemError, match="adaptive threshold .* NIR 1.0's neurons"):
                nir_node_of(p, (4,), NIR_DT)
            p = model.parameters(beta_a=0.0)  # no adaptation: the lif form
        if model.to_nir is None:
            assert model.nir_refusal
            with pytest.raises(NeuromemError, match=f"neuron '{name}' has no NIR form: .+; neurons NIR can express"):
                nir_node_of(p, (4,), NIR_DT)
            continue
        node, _ = nir_node_of(p, (4,), NIR_DT)
        assert isinstance(node, (nir.CubaLIF, nir.LIF, nir.IF)) and node.v_threshold.shape == (4,)
        assert nir_neuron_from(node, NIR_DT, exact=True).parameters == p  # neuromem's import restores the record


def test_lif_and_cuba_nodes_are_read_back_as_nir_states_them():
    lif, _ = nir_node_of(get_neuron("lif").parameters(beta=0.7, threshold=0.5, reset="zero"), (3,), NIR_DT)
    cuba, _ = nir_node_of(get_neuron("cuba").parameters(beta=0.9, alpha=0.6, reset="zero"), (3,), NIR_DT)
    assert isinstance(lif, nir.CubaLIF) and np.allclose(lif.tau_syn, NIR_DT)  # its current is the step's drive
    read = nir_neuron_from(lif, NIR_DT).parameters
    assert type(read).__name__ == "LIFParameters" and read.beta == pytest.approx(0.7) and read.threshold == 0.5
    read = nir_neuron_from(cuba, NIR_DT).parameters
    assert type(read).__name__ == "CUBAParameters" and read.alpha == pytest.approx(0.6)
    # a subtract reset has no NIR form: NIR readers run the reset to 0, neuromem's import restores it
    node, caveat = nir_node_of(get_neuron("lif").parameters(), (3,), NIR_DT)
    assert "reset 'subtract' has no NIR form" in caveat
    assert nir_neuron_from(node, NIR_DT).parameters.reset == "zero"
    assert nir_neuron_from(node, NIR_DT, exact=True).parameters.reset == "subtract"


def _zero_reset_chain(conv: bool):
    """A float chain of zero-reset lif and cuba layers (NIR's own reset), with a recurrent layer."""
    torch.manual_seed(4)
    if conv:
        layers = [SpikingConv2d(2, 4, 3, stride=2, padding=1, neuron="lif", reset="zero", beta=0.8),
                  SpikingLinear(4 * 4 * 4, 10, neuron="cuba", reset="zero", alpha=0.5)]
        shape = (2, 8, 8)
    else:
        layers = [SpikingLinear(20, 12, neuron="lif", reset="zero", beta=0.8),
                  SpikingLinear(12, 10, neuron="cuba", reset="zero", alpha=0.5, recurrent=True)]
        shape = (20,)
    with torch.no_grad():
        for layer in layers:
            layer.synapse.weight.mul_(4)
    readout = torch.nn.Linear(10, 3)
    return SpikingChain(layers, readout, shape)


@pytest.mark.parametrize("conv", [False, True])
def test_zero_reset_float_chain_is_its_graph_in_neuromem_and_norse(conv):
    chain = _zero_reset_chain(conv)
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, 3, (6, 25, *chain.input_shape)) * (rng.random((6, 25, *chain.input_shape)) < 0.3)
    report = nir_agreement(chain, inputs, simulators=("norse",))
    assert all(s > 0 for s in report.spikes[:-1]), report.lines()
    assert report.caveats == [] and sum(report.cell_mismatches) == 0 and report.decisions_vs_cell == 1.0, report.lines()
    (norse,) = report.simulators
    assert norse.refused is None and sum(norse.mismatches) <= 1 and norse.decisions_vs_cell == 1.0, report.lines()


def test_default_lif_cell_with_spiking_memory_exports_and_norse_runs_its_graph(tmp_path):
    net, inputs, labels = _trained("shd", (30,), "hopfield-spiking", {"dim": 8, "relay": 6})
    chain = spiking_chain(net, "shd", (30,))
    graph = read_nir(write_nir(chain, tmp_path / "cell.nir", dataset="shd", time_bins=30))
    kinds = {k: type(n).__name__ for k, n in graph.nodes.items()}
    assert kinds["layer0.linear"] == "Affine" and kinds["layer0.lif"] == "CubaLIF" and kinds["layer5.lif"] == "IF"
    assert {"layer1.w_rec", "layer3.w_rec"} <= set(kinds)  # the SHD front end's recurrence, the lateral inhibition
    recorded = json.loads(graph.metadata["neuromem"])
    assert recorded["dataset"] == "shd" and recorded["time_bins"] == 30 and recorded["caveats"]
    report = nir_agreement(chain, inputs, simulators=("norse",), labels=labels)
    (norse,) = report.simulators
    assert norse.refused is None and sum(norse.mismatches) <= 2 and norse.decisions_equal == 1.0, report.lines()
    # read with its metadata (the subtract reset restored) the graph is the cell, spike for spike
    assert sum(report.exact_mismatches) == 0 and report.exact_decisions == 1.0, report.lines()
    assert any("reset 'subtract'" in line for line in report.lines())
    # 64 patterns + 6 relay neurons
    assert "30 -> 12 (lif) -> 12r (lif) -> 8 (lif) -> 70r (lif) -> 8 (lif) -> readout 3" in chain.describe()[0]
    assert "reset 'subtract' has no NIR form" in chain.describe()[1]


@pytest.mark.parametrize("modality, shape, memory, options", [
    ("shd", (30,), "hopfield-spiking", {"dim": 8, "relay": 6}),
    ("nmnist", (2, 10, 10), "scl-spiking", {"dim": 8, "hidden": 8}),
])
def test_neuron_options_reach_every_spiking_layer(modality, shape, memory, options):
    from neuromem.models import build_network
    from neuromem.neurons.layers import SpikingLayer

    net = build_network({modality: shape}, {modality: 3}, memory, hidden=12, memory_options=options,
                        neuron_params={"reset": "zero", "threshold": 0.75})
    front = [m for m in net.front_ends[modality].modules() if isinstance(m, SpikingLayer)]
    layers = [*front, *net.memory.chip_layers(modality)]
    assert len(front) >= 2 and len(layers) == len(front) + (3 if memory == "hopfield-spiking" else 2)
    assert all((l.parameters_.reset, l.parameters_.threshold) == ("zero", 0.75) for l in layers)
    # the SHD front end keeps its own membrane decay, the memory the model's
    assert front[0].parameters_.beta == (0.7 if modality == "shd" else 0.9) and layers[-1].parameters_.beta == 0.9


def test_zero_reset_lif_cell_is_its_graph_in_neuromem_and_norse():
    net, inputs, labels = _trained("shd", (30,), "hopfield-spiking", {"dim": 8, "relay": 6},
                                   neuron_params={"reset": "zero"})
    chain = spiking_chain(net, "shd", (30,))
    report = nir_agreement(chain, inputs, simulators=("norse",), labels=labels)
    assert report.caveats == [] and not any("the graph does not say" in line for line in chain.describe())
    assert all(s > 0 for s in report.spikes[:-1]), report.lines()
    assert sum(report.cell_mismatches) == 0 and report.decisions_vs_cell == 1.0, report.lines()
    (norse,) = report.simulators
    assert norse.refused is None and norse.decisions_vs_cell == 1.0, report.lines()


def test_a_simulator_not_installed_says_how_it_installs(monkeypatch):
    from neuromem.export.nir import compare

    monkeypatch.setattr(compare, "simulator_version", lambda name: None)
    chain = _zero_reset_chain(conv=False)
    report = nir_agreement(chain, np.ones((2, 5, 20)), simulators=("sinabs", "norse"))
    assert [s.refused.split(":")[0] for s in report.simulators] == ["not installed here"] * 2
    assert "`pip install --no-deps sinabs==3.1.3 pbr`: it asks for nir<=1.0.4" in report.simulators[0].refused


def test_what_nir_cannot_express_is_refused_in_one_line():
    from neuromem.models import build_network

    net = build_network({"shd": (30,)}, {"shd": 3}, "hopfield", hidden=12)
    with pytest.raises(NeuromemError, match=r"memory 'hopfield' has no NIR form: softmax.*export: hopfield-spiking"):
        spiking_chain(net, "shd", (30,))
    net = build_network({"shd": (30,)}, {"shd": 3}, "scl-spiking", hidden=12, neuron="alif",
                        memory_options={"dim": 8, "hidden": 8})
    with pytest.raises(NeuromemError, match=r"neuron 'alif' has an adaptive threshold.*\(layer 0\)"):
        to_nir(spiking_chain(net, "shd", (30,)))
    net = build_network({"shd": (30,)}, {"shd": 3}, "scl-spiking", hidden=12, front_options={"delays": 4},
                        memory_options={"dim": 8, "hidden": 8})
    with pytest.raises(NeuromemError, match=r"layer 0 has learned synaptic delays .* no delay node.*--to lava"):
        to_nir(spiking_chain(net, "shd", (30,)))


def test_loihi_cell_round_trips_nir_to_the_same_chip_chain(tmp_path):
    from neuromem.export.model import chip_network
    from neuromem.export.nir.cell import build, plan

    net, _, _ = _trained("shd", (30,), "hopfield-spiking", {"dim": 8, "relay": 6}, neuron="loihi")
    chain = chip_network(net, "shd", (30,))
    imported = plan(read_nir(write_nir(chain, tmp_path / "loihi.nir")), NIR_DT)
    assert imported.neuron == "loihi"
    back = chip_network(build(imported, "shd", 3), "shd", (30,))
    for original, rebuilt in zip(chain.layers, back.layers):
        assert torch.equal(original.synapse.integer_weight(), rebuilt.synapse.integer_weight())
        assert (original.recurrent is None) == (rebuilt.recurrent is None)
        if original.recurrent is not None:
            assert torch.equal(original.integer_weights()[1], rebuilt.integer_weights()[1])
        assert original.neuron == rebuilt.neuron
    assert back.config == chain.config


def _snntorch_net(classes):
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(5)
    net = torch.nn.Sequential(
        torch.nn.Linear(700, 24),
        snn.Leaky(beta=torch.full((24,), 0.9), threshold=torch.full((24,), 0.5), reset_mechanism="zero",
                  reset_delay=False, init_hidden=True),
        torch.nn.Linear(24, classes),
        snn.Leaky(beta=torch.full((classes,), 0.9), threshold=torch.full((classes,), 0.5), reset_mechanism="zero",
                  reset_delay=False, init_hidden=True, output=True),
    )
    with torch.no_grad():
        net[0].weight.mul_(6)
        net[2].weight.mul_(3)
    return net


def _norse_net(classes):
    norse = pytest.importorskip("norse.torch")
    from norse.torch.module.lif_box import LIFBoxCell, LIFBoxParameters

    torch.manual_seed(6)
    net = norse.SequentialState(
        torch.nn.Linear(700, 24),
        LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.full((24,), 50.0), v_th=torch.full((24,), 0.05),
                                    v_leak=torch.zeros(24))),
        torch.nn.Linear(24, classes),
        LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.full((classes,), 80.0), v_th=torch.full((classes,), 0.02),
                                    v_leak=torch.zeros(classes))),
    )
    with torch.no_grad():
        net[0].weight.mul_(6)
    return net


@pytest.mark.parametrize("peer", ["snntorch", "norse"])
def test_import_of_a_peer_graph_evaluates_on_a_data_set(tmp_path, tiny_data, peer):
    """A Linear -> LIF -> Linear -> LIF network written by snnTorch's / Norse's own exporter becomes a cell whose
    test predictions are the peer's own (the output neuron that fired most), then evaluate and export read it."""
    from typer.testing import CliRunner

    from neuromem.export.cli import _load_data

    app = _cli()

    inputs, labels = _load_data(tiny_data, "test", None, None, "shd")
    x = torch.as_tensor(inputs).float().transpose(0, 1)
    classes = 20
    if peer == "snntorch":
        from snntorch import utils
        from snntorch.export_nir import export_to_nir

        net = _snntorch_net(classes)
        graph, dt = export_to_nir(net, x[0, :1], ignore_dims=[0]), None
        utils.reset(net)
        with torch.no_grad():
            counts = torch.stack([net(step)[0] for step in x]).sum(0)
    else:
        import norse.torch as norse

        net = _norse_net(classes)
        graph, dt = norse.to_nir(net, x[0, 0]), "1e-6"  # Norse 1.1.0 writes tau = dt / tau_mem_inv (dt 1e-3)
        state, outs = None, []
        with torch.no_grad():
            for step in x:
                out, state = net(step, state)
                outs.append(out)
        counts = torch.stack(outs).sum(0)
    assert counts.sum() > 0
    path = tmp_path / f"{peer}.nir"
    nir.write(str(path), graph)
    runner = CliRunner()
    args = ["import", str(path), "--out", str(tmp_path / "run"), "--dataset", "shd", "--data-root", str(tiny_data)]
    result = runner.invoke(app, args + (["--dt", dt] if dt else []))
    assert result.exit_code == 0, result.output
    assert "the most spikes of" in result.output
    accuracy = float(re.search(r"test accuracy on shd \((\d+) samples at .*\): ([\d.]+)%", result.output).group(2))
    (cell,) = list((tmp_path / "run" / "cells").iterdir())
    predictions = np.load(cell / "representations.npz")["shd/predictions"]
    expected = counts.argmax(-1).numpy()
    assert int((predictions != expected).sum()) <= (0 if peer == "snntorch" else 1)  # Norse: float32 flips at most one
    assert accuracy == pytest.approx(100 * float((predictions == labels).mean()), abs=0.01)
    assert json.loads((cell / "cell.json").read_text())["config"]["memory"] == "none"
    result = runner.invoke(app, ["evaluate", str(tmp_path / "run"), "--robustness", "noise", "--data-root", str(tiny_data)])
    assert result.exit_code == 0 and "evaluated 1 cells" in result.output, result.output
    result = runner.invoke(app, ["export", str(cell), "--to", "lava", "--out", str(tmp_path / "x.h5")])
    assert isinstance(result.exception, NeuromemError) and "no Loihi fixed-point form" in str(result.exception)


def test_import_refuses_bad_input_in_one_line(tmp_path, tiny_data):
    from typer.testing import CliRunner

    app = _cli()
    chain = _zero_reset_chain(conv=False)
    path = write_nir(chain, tmp_path / "small.nir")
    graph = read_nir(path)
    graph.nodes["layer0.linear"].weight[0, 0] = np.nan
    broken = tmp_path / "nan.nir"
    nir.write(str(broken), graph)
    runner = CliRunner()
    out = ["--out", str(tmp_path / "run"), "--data-root", str(tiny_data)]
    for args, message in (
        ([str(tmp_path / "missing.nir"), *out, "--dataset", "shd"], "does not exist"),
        ([str(path), *out], "does not say which data set it reads; give --dataset"),
        ([str(path), *out, "--dataset", "bogus"], "--dataset 'bogus' is not known; valid: "),
        ([str(path), *out, "--dataset", "shd"], r"takes inputs of shape \(20,\) per step; the shd data set gives \(700,\)"),
        ([str(path), *out, "--dataset", "shd", "--dt", "0"], "--dt 0.0 is not a time step"),
        ([str(tmp_path), *out, "--dataset", "shd"], "is a directory; give a .nir file"),
        ([str(broken), *out, "--dataset", "shd"], r"NIR node 'layer0.linear': its weights hold NaN"),
    ):
        result = runner.invoke(app, ["import", *args])
        assert isinstance(result.exception, NeuromemError), (args, result.output)
        assert re.search(message, str(result.exception)) and "\n" not in str(result.exception), str(result.exception)
    assert not (tmp_path / "run" / "cells").exists()


def test_every_installed_simulator_gives_numbers_or_a_reason():
    """One graph every peer's importer can try (a Loihi SHD chain: dense, recurrent): each installed simulator
    runs it or says in one line why it cannot; Norse agrees with neuromem's run of the graph. (Importing
    Spyx and Rockpool takes ~15 s: this is the one test that runs them.)"""
    from neuromem.export.model import chip_network
    from neuromem.export.nir import SIMULATORS
    from neuromem.export.nir.compare import simulator_version

    net, inputs, labels = _trained("shd", (30,), "scl-spiking", {"dim": 8, "hidden": 8}, neuron="loihi")
    report = nir_agreement(chip_network(net, "shd", (30,)), inputs[:6], labels=labels[:6])
    assert [s.name for s in report.simulators] == list(SIMULATORS)
    ran = set()
    for sim in report.simulators:
        assert (sim.refused is None) != (sim.decisions_equal is None), sim
        if sim.refused:
            assert "\n" not in sim.refused and len(sim.refused) < 300
        else:
            ran.add(sim.name)
            assert len(sim.mismatches) == len(report.layers) and 0.0 <= sim.decisions_vs_cell <= 1.0
    assert "norse" in ran and report.simulators[0].decisions_equal == 1.0, report.lines()
    assert {"rockpool", "spyx"} & {n for n in SIMULATORS if simulator_version(n)} <= ran, report.lines()
    lines = "\n".join(report.lines())
    for sim in report.simulators:
        assert re.search(rf"  {sim.name}( [\d.]+)?: (mismatching|not run: )", lines), sim.name
