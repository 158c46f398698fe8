"""NIR both ways: our .nir runs identically in snnTorch, Norse and neuromem; their exports import into neuromem."""

import re

import numpy as np
import pytest
import torch

from conftest import train_tiny_cell

from neuromem.errors import NeuromemError
from neuromem.export.model import LoihiNetwork, LoihiNetworkConfig
from neuromem.export.nir import from_nir, read_nir, write_nir

nir = pytest.importorskip("nir")


def _model(recurrent: bool, readout_vth: int | None = None) -> LoihiNetwork:
    torch.manual_seed(0)
    readout = {"du": 4095, "dv": 16}
    if readout_vth is not None:
        readout["vth"] = readout_vth
    model = LoihiNetwork(LoihiNetworkConfig(50, (24, 16), (False, recurrent), 4, hidden={"vth": 1024}, readout=readout))
    with torch.no_grad():  # strong enough weights that every layer spikes
        for layer in model.layers:
            layer.synapse.weight.mul_(3)
    return model


def _inputs(steps=30, batch=4, channels=50):
    generator = torch.Generator().manual_seed(1)
    return (torch.rand(steps, batch, channels, generator=generator) < 0.2).float()


def _snntorch_run(graph, x):
    pytest.importorskip("snntorch")
    from snntorch import import_nir, utils

    net = import_nir.import_from_nir(graph)
    utils.reset(net)
    with torch.no_grad():
        out = torch.stack([net(step)[0] for step in x])
    return net, out


def _norse_run(graph, x, dt=1e-4):
    norse = pytest.importorskip("norse.torch")
    net = norse.from_nir(graph, dt=dt)
    state, outs = None, []
    with torch.no_grad():
        for step in x:
            out, state = net(step, state)
            outs.append(out)
    return state, torch.stack(outs)


def test_our_nir_runs_the_same_in_snntorch_and_neuromem(tmp_path):
    path = write_nir(_model(recurrent=False, readout_vth=600), tmp_path / "ff.nir")
    x = _inputs()
    with torch.no_grad():
        ours, _ = from_nir(path).run(x)
    net, theirs = _snntorch_run(read_nir(path), x)
    assert ours[0].sum() > 0 and ours[1].sum() > 0 and ours[-1].sum() > 0
    assert torch.equal(theirs, ours[-1])


def test_our_nir_readout_voltage_matches_snntorch(tmp_path):
    path = write_nir(_model(recurrent=False), tmp_path / "readout.nir")
    x = _inputs()
    with torch.no_grad():
        _, membrane = from_nir(path).run(x)
    net, _ = _snntorch_run(read_nir(path), x)
    assert membrane.abs().max() > 100
    torch.testing.assert_close(net.layer2_lif.mem, membrane, rtol=1e-5, atol=1e-2)


@pytest.mark.parametrize("recurrent", [False, True])
def test_our_nir_runs_the_same_in_norse_and_neuromem(tmp_path, recurrent):
    path = write_nir(_model(recurrent=recurrent, readout_vth=600), tmp_path / "net.nir")
    x = _inputs()
    with torch.no_grad():
        ours, membrane = from_nir(path).run(x)
    state, theirs = _norse_run(read_nir(path), x)
    assert ours[1].sum() > 0 and ours[-1].sum() > 0
    mismatched = int((theirs != ours[-1]).sum())
    # Norse scales by dt/tau and back in float32: allow a rare flip at the threshold, not more
    assert mismatched <= 1, mismatched


def test_norse_recurrent_readout_voltage_matches(tmp_path):
    path = write_nir(_model(recurrent=True), tmp_path / "rec.nir")
    x = _inputs()
    with torch.no_grad():
        _, membrane = from_nir(path).run(x)
    state, _ = _norse_run(read_nir(path), x)
    readout_state = state.state["layer2_lif"][0][1]
    torch.testing.assert_close(readout_state.v, membrane, rtol=1e-4, atol=0.5)


@pytest.mark.xfail(strict=True, reason="snnTorch 1.0.0 nests recurrent layers as sub-graphs, which nirtorch 2.6 cannot build")
def test_our_recurrent_nir_in_snntorch(tmp_path):
    path = write_nir(_model(recurrent=True, readout_vth=600), tmp_path / "rec.nir")
    x = _inputs()
    with torch.no_grad():
        ours, _ = from_nir(path).run(x)
    _, theirs = _snntorch_run(read_nir(path), x)
    assert torch.equal(theirs, ours[-1])


def test_import_snntorch_export():
    snn = pytest.importorskip("snntorch")
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(2)
    net = torch.nn.Sequential(
        torch.nn.Linear(20, 12),
        # per-neuron parameters: snnTorch 1.0.0's exporter cannot type scalar ones; NIR's reset is
        # immediate (snnTorch's own importer builds reset_delay=False), so the reference uses it too
        snn.Synaptic(alpha=torch.full((12,), 0.8), beta=torch.full((12,), 0.9), threshold=torch.ones(12),
                     reset_mechanism="zero", reset_delay=False, init_hidden=True),
        torch.nn.Linear(12, 5),
        snn.Leaky(beta=torch.full((5,), 0.85), threshold=torch.full((5,), 0.5), reset_mechanism="zero",
                  reset_delay=False, init_hidden=True, output=True),
    )
    with torch.no_grad():
        net[0].weight.mul_(3)
        net[2].weight.mul_(3)
    x = _inputs(40, 3, 20)
    graph = export_to_nir(net, x[0, :1], ignore_dims=[0])
    utils.reset(net)
    with torch.no_grad():
        reference = torch.stack([net(step)[0] for step in x])
        ours, _ = from_nir(graph).run(x)
    assert reference.sum() > 0
    assert torch.equal(ours[-1], reference)


def test_import_norse_export():
    norse = pytest.importorskip("norse.torch")
    from norse.torch.module.lif_box import LIFBoxCell, LIFBoxParameters

    torch.manual_seed(3)
    net = norse.SequentialState(
        torch.nn.Linear(20, 12),
        LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.tensor(50.0), v_th=torch.tensor(0.2))),
        torch.nn.Linear(12, 5),
        LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.tensor(80.0), v_th=torch.tensor(0.1))),
    )
    x = _inputs(40, 3, 20)
    graph = norse.to_nir(net, x[0])  # dt = 1e-3 s, written as tau = dt / tau_mem_inv
    state, outs = None, []
    with torch.no_grad():
        for step in x:
            out, state = net(step, state)
            outs.append(out)
        ours, _ = from_nir(graph, dt=1e-3**2).run(x)  # see from_nir's note on Norse 1.1.0
    reference = torch.stack(outs)
    assert reference.sum() > 0
    assert int((ours[-1] != reference).sum()) <= 1


def test_corrupt_and_truncated_nir_files(tmp_path):
    good = write_nir(_model(recurrent=True), tmp_path / "good.nir")
    truncated = tmp_path / "truncated.nir"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    garbage = tmp_path / "garbage.nir"
    garbage.write_bytes(b"not a nir graph at all")
    for path in (truncated, garbage):
        with pytest.raises(NeuromemError, match="not a readable NIR graph"):
            from_nir(path)
    with pytest.raises(NeuromemError, match="does not exist"):
        from_nir(tmp_path / "missing.nir")


def test_unsupported_nodes_are_named():
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([4])}),
            "w": nir.Linear(weight=np.ones((3, 4))),
            "leaky": nir.LI(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3)),
            "output": nir.Output(output_type={"output": np.array([3])}),
        },
        edges=[("input", "w"), ("w", "leaky"), ("leaky", "output")],
    )
    with pytest.raises(NeuromemError, match=r"NIR node 'leaky' of type LI is not supported.*CubaLIF"):
        from_nir(graph)


def test_nir_export_refuses_perfect_integrators():
    model = LoihiNetwork(LoihiNetworkConfig(10, (4,), (False,), 2, readout={"dv": 0}))
    with pytest.raises(NeuromemError, match="dv >= 1"):
        from neuromem.export.nir import to_nir

        to_nir(model)


def test_nir_is_the_float_shadow_of_the_fixed_point_model(tmp_path):
    """Same network without rounding and without Lava's one-step delay per layer: nearly every spike agrees."""
    model = _model(recurrent=True)
    x = _inputs(60, 8)
    with torch.no_grad():
        fixed, _ = model.run(x.double())
        shadow, _ = from_nir(write_nir(model, tmp_path / "m.nir")).run(x)
    for layer in range(2):
        delay = layer + 1
        a, b = fixed[layer][delay:].float(), shadow[layer][:-delay]
        assert a.sum() > 50
        assert (a == b).float().mean() > 0.99


# ------------------------------------------------------------- whole grid cells: SHD and N-MNIST chains


def _small_cell(modality, shape, memory, options, steps, seed=0):
    """A tiny Loihi grid cell trained a few steps (as in test_loihi_cells_lava), its chip chain, and inputs."""
    from neuromem.export.model import chip_network

    net, inputs, _ = train_tiny_cell(modality, shape, memory, {"dim": 8, **options}, neuron="loihi", steps=steps,
                                     seed=seed, max_count=1)
    return chip_network(net, modality, shape), inputs


def _check_agreement(report, simulators):
    # every hidden layer spikes (in both runs), so neither the spikes nor the readout voltage compared are silence
    assert all(s > 0 for s in report.spikes[:-1]) and all(s > 0 for s in report.fixed_spikes[:-1]), report.lines()
    assert [s.name for s in report.simulators if s.refused is None] == list(simulators), report.lines()
    for sim in report.simulators:
        if sim.refused is None:
            # Norse/snnTorch scale by dt/tau and back in float32: a rare flip at the threshold, not more
            assert sum(sim.mismatches) <= max(2, sum(report.spikes) // 1000), report.lines()
            assert sim.decisions_equal == 1.0 and sim.voltage_error < 1e-4, report.lines()
    for mismatches, spikes in zip(report.fixed_mismatches[:-1], report.fixed_spikes[:-1]):
        assert mismatches <= 0.05 * spikes, report.lines()  # the chip's rounding moves a few spikes, no more
    assert report.decisions_vs_cell_aligned >= 0.8, report.lines()


def test_nmnist_cell_with_convolutions_exports_and_runs_in_norse_and_snntorch(tmp_path):
    from neuromem.export.nir import nir_agreement

    chain, inputs = _small_cell("nmnist", (2, 10, 10), "scl-spiking", {"hidden": 16}, steps=30)
    assert len(chain.convs) == 2
    graph = read_nir(write_nir(chain, tmp_path / "cell.nir"))
    chain_order = ["input", "layer0.conv", "layer0.lif", "layer1.conv", "layer1.lif", "flatten", "layer2.linear"]
    assert all((a, b) in graph.edges for a, b in zip(chain_order, chain_order[1:]))
    assert [type(graph.nodes[k]).__name__ for k in chain_order] == [
        "Input", "Conv2d", "CubaLIF", "Conv2d", "CubaLIF", "Flatten", "Linear"]
    first = graph.nodes["layer0.conv"]
    assert tuple(first.stride) == (2, 2) and tuple(first.padding) == (2, 2) and tuple(first.input_shape) == (10, 10)
    assert graph.nodes["layer1.lif"].v_threshold.shape == (32, 3, 3)  # neurons shaped like the conv output
    report = nir_agreement(chain, inputs[:8], simulators=("norse", "snntorch"))
    assert report.layers == ["layer0.lif", "layer1.lif", "layer2.lif", "layer3.lif", "layer4.lif", "layer5.lif"]
    _check_agreement(report, ("norse", "snntorch"))


def test_recurrent_cells_run_in_norse_and_snntorch_refuses_them_plainly(tmp_path):
    """hopfield-spiking with relay neurons (lateral inhibition: a recurrent layer; the tied transpose is a
    plain Linear in the graph) on an SHD-like chain and behind the N-MNIST convolutions."""
    from neuromem.export.nir import nir_agreement, run_snntorch

    for modality, shape, samples in (("shd", (30,), 16), ("nmnist", (2, 10, 10), 8)):
        chain, inputs = _small_cell(modality, shape, "hopfield-spiking", {"relay": 6}, steps=30)
        graph = read_nir(write_nir(chain, tmp_path / f"{modality}.nir"))
        assert any(k.endswith(".w_rec") for k in graph.nodes)
        report = nir_agreement(chain, inputs[:samples], simulators=("norse", "snntorch"))
        _check_agreement(report, ("norse",))
        (snntorch,) = [s for s in report.simulators if s.name == "snntorch"]
        assert "cannot build recurrent layers" in snntorch.refused
        with pytest.raises(NeuromemError, match="snnTorch 1.0.0's importer .* cannot build recurrent layers"):
            run_snntorch(graph, torch.zeros(2, 1, *shape))


def test_conv_import_refuses_what_it_cannot_build():
    conv = nir.Conv2d(input_shape=(6, 6), weight=np.ones((3, 2, 3, 3)), stride=1, padding=1, dilation=2, groups=1,
                      bias=np.zeros(3))
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2, 6, 6])}),
            "conv": conv,
            "lif": nir.LIF(tau=np.full((3, 2, 2), 1e-3), r=np.ones((3, 2, 2)), v_leak=np.zeros((3, 2, 2)),
                           v_threshold=np.ones((3, 2, 2))),
            "output": nir.Output(output_type={"output": np.array([3, 2, 2])}),
        },
        edges=[("input", "conv"), ("conv", "lif"), ("lif", "output")],
        type_check=False,
    )
    with pytest.raises(NeuromemError, match=r"NIR node 'conv': Conv2d with .*dilation"):
        from_nir(graph)


def test_cli_exports_an_nmnist_grid_cell_to_nir_and_compares(tmp_path, tiny_data, monkeypatch):
    """`neuromem export runs/X/cells/<cell> --to nir --compare N` on an N-MNIST Loihi cell (full 2x34x34 input)."""
    import typer
    from typer.testing import CliRunner

    from neuromem.export.cli import register
    from neuromem.models import build_network
    from neuromem.train.config import CellConfig

    monkeypatch.setenv("NEUROMEM_DATA", str(tiny_data))
    torch.manual_seed(0)
    config = CellConfig(modality="nmnist", memory="scl-spiking", hidden=12, neuron="loihi",
                        memory_options=(("dim", 8), ("hidden", 16)))
    net = build_network({"nmnist": (2, 34, 34)}, {"nmnist": 10}, "scl-spiking", hidden=12, neuron="loihi",
                        memory_options=dict(config.memory_options))
    cell = tmp_path / "run" / "cells" / config.cell_id
    cell.mkdir(parents=True)
    torch.save({"config": config.to_dict(), "state_dict": {"nmnist": net.state_dict()}}, cell / "model.pt")
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(cell), "--to", "nir", "--out", str(tmp_path / "cell.nir"), "--compare", "3"])
    assert result.exit_code == 0, result.output
    assert "2312 -> conv 4624" in result.output  # 2x34x34 in, 16x17x17 neurons in the first convolution
    assert "NIR graph on 3 samples" in result.output
    assert re.search(r"norse [\d.]+: mismatching", result.output)
    assert re.search(r"snntorch [\d.]+: mismatching", result.output)  # a feed-forward cell: snnTorch builds it too
    # every other simulator gives its numbers or one line saying why it did not run
    for peer in ("sinabs", "rockpool", "spyx"):
        assert re.search(rf"{peer}( [\d.]+)?: (mismatching|not run: .+)", result.output), peer
    assert "accuracy on these samples: Loihi fixed-point chain" in result.output and "snntorch " in result.output
    graph = read_nir(tmp_path / "cell.nir")
    assert tuple(graph.nodes["layer1.conv"].input_shape) == (17, 17)
    refused = runner.invoke(app, ["export", str(cell), "--to", "lava", "--out", str(tmp_path / "c.h5"), "--compare", "3"])
    assert isinstance(refused.exception, NeuromemError) and "hw verify" in str(refused.exception)
    from neuromem.export.model import save_checkpoint

    bare = save_checkpoint(_model(recurrent=False), tmp_path / "bare.pt")  # a Loihi network without a data set
    refused = runner.invoke(app, ["export", str(bare), "--to", "nir", "--out", str(tmp_path / "b.nir"), "--compare", "3"])
    assert isinstance(refused.exception, NeuromemError) and "--compare needs a grid cell" in str(refused.exception)


def test_import_snntorch_conv_export():
    """snnTorch writes Flatten with NIR's batch-free dims too: its conv net imports spike for spike."""
    snn = pytest.importorskip("snntorch")
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(2)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, stride=2, padding=1),
        snn.Synaptic(alpha=torch.full((4, 4, 4), 0.8), beta=torch.full((4, 4, 4), 0.9), threshold=torch.ones(4, 4, 4),
                     reset_mechanism="zero", reset_delay=False, init_hidden=True),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 5),
        snn.Leaky(beta=torch.full((5,), 0.85), threshold=torch.full((5,), 0.5), reset_mechanism="zero",
                  reset_delay=False, init_hidden=True, output=True),
    )
    with torch.no_grad():
        net[0].weight.mul_(3)
        net[3].weight.mul_(3)
    x = (torch.rand(40, 3, 2, 8, 8, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    graph = export_to_nir(net, x[0, :1], ignore_dims=[0])
    assert any(isinstance(n, nir.Conv2d) for n in graph.nodes.values())
    utils.reset(net)
    with torch.no_grad():
        reference = torch.stack([net(step)[0] for step in x])
        ours, _ = from_nir(graph).run(x)
    assert ours[0].sum() > 100 and reference.sum() > 0
    assert torch.equal(ours[-1], reference)
