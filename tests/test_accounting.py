"""Accounting: exact counts on networks with known spikes, NeuroBench agreement, energy arithmetic."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from neuromem.accounting import (
    ABLATION_COLUMNS,
    HOROWITZ_45NM,
    LOIHI,
    AccountingReport,
    SynapticOperationCounter,
    ablation_columns,
    accounting_metrics,
    ann_energy_per_sample,
    energy_assumptions,
    energy_per_sample,
    energy_profile,
)
from neuromem.accounting.operations import binarised_conv_output, connection_operations
from neuromem.errors import NeuromemError
from neuromem.neurons.layers import SpikingConv2d, SpikingLinear

torch.set_num_threads(1)


def _set(linear: nn.Module, weight, bias=None) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        if linear.bias is not None:
            linear.bias.zero_()


class KnownSpikeNet(nn.Module):
    """beta = 0 and reset-to-zero: v_t = input current, a neuron spikes iff its current > 1."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = SpikingLinear(4, 3, beta=0.0, reset="zero")
        self.output = SpikingLinear(3, 2, recurrent=True, beta=0.0, reset="zero")
        self.readout = nn.Linear(2, 2)
        # column fan-outs 2, 2, 0, 0: inputs 2 and 3 reach nothing
        _set(self.hidden.synapse, [[2, 0, 0, 0], [0, 2, 0, 0], [2, 2, 0, 0]])
        # hidden 0 -> out 0, hidden 1 -> out 1, hidden 2 -> nothing
        _set(self.output.synapse, [[2, 0, 0], [0, 2, 0]])
        with torch.no_grad():
            # small recurrent weights never change who spikes; column fan-outs 1 and 2
            self.output.recurrent.copy_(torch.tensor([[0.1, 0.1], [0.0, 0.1]]))
        _set(self.readout, [[1, 1], [1, -1]])

    def forward(self, spikes):
        hidden = self.hidden(spikes)
        out = self.output(hidden)
        return self.readout(out.mean(0))


def _known_input() -> torch.Tensor:
    x = torch.zeros(3, 2, 4)  # (T, batch, features)
    x[0, 0, 0] = 1  # -> hidden 0, 2 spike -> out 0
    x[1, 0, 1] = 1  # -> hidden 1, 2 -> out 1
    x[1, 0, 3] = 1  # reaches nothing
    x[2, 1, 0] = 1
    x[2, 1, 1] = 1  # -> hidden 0, 1, 2 -> out 0, 1
    x[0, 1, 2] = 1  # reaches nothing
    return x


def test_known_spike_counts_are_exact():
    net = KnownSpikeNet().eval()
    with torch.no_grad(), SynapticOperationCounter(net) as counter:
        net(_known_input())
    report = counter.report()
    layers = {layer["name"]: layer for layer in report.layers}
    assert report.samples == 2
    # hidden: input spikes on features 0,1,3,0,1,2 -> fan-outs 2+2+0+2+2+0 = 8 ACs over 2 samples
    assert layers["hidden"]["effective_acs_per_sample"] == 8 / 2
    assert layers["hidden"]["dense_ops_per_sample"] == 3 * 4 * 3  # T * in * out
    # hidden spikes: t0 b0 {0,2}, t1 b0 {1,2}, t2 b1 {0,1,2} = 7 of 18
    assert layers["hidden"]["spikes_per_sample"] == 7 / 2
    assert layers["hidden"]["activation_sparsity"] == pytest.approx(1 - 7 / 18)
    # output feed-forward: hidden spikes x fan-outs (1, 1, 0) = 1+0+1+0+1+1+0 = 4
    # output spikes: t0 b0 {0}, t1 b0 {1}, t2 b1 {0,1}; recurrent: only t0, t1 drive -> out0@t0 (fan-out 1)
    # + out1@t1 (fan-out 2) = 3; dense recurrent: (T-1) * batch * 2 * 2 = 16
    assert layers["output"]["recurrent_effective_per_sample"] == 3 / 2
    assert layers["output"]["effective_acs_per_sample"] == (4 + 3) / 2
    assert layers["output"]["dense_ops_per_sample"] == (3 * 3 * 2 * 2 + 16) / 2
    assert layers["output"]["spikes_per_sample"] == 4 / 2
    # readout on firing rates (non-binary: 1/3, 2/3) -> MACs: b0 has 2 non-zero rates, b1 has 2 -> x fan-out 2
    assert layers["readout"]["effective_macs_per_sample"] == 8 / 2
    assert layers["readout"]["effective_acs_per_sample"] == 0
    assert report.effective_acs_per_sample == (8 + 7) / 2
    assert report.synops_per_sample == (8 + 7 + 8) / 2
    assert report.activation_sparsity == pytest.approx(1 - (7 + 4) / (18 + 12))
    # no functional matmuls: the recurrent product inside the spiking layer is not double counted
    assert report.functional_macs_per_sample == 0


def test_conv_fanout_is_exact_at_borders_and_stride():
    conv = nn.Conv2d(1, 2, kernel_size=3, stride=2, padding=1)
    _set(conv, torch.ones(2, 1, 3, 3))
    for position, expected in [((0, 0), 2), ((2, 2), 2), ((1, 1), 8), ((4, 4), 2), ((3, 2), 4)]:
        x = torch.zeros(1, 1, 5, 5)
        x[0, 0, position[0], position[1]] = 1
        effective, dense = connection_operations(conv, x)
        assert effective == expected, position
        assert dense == binarised_conv_output(conv, torch.ones_like(x)).sum()


def test_conv_counts_match_binary_convolution_and_skip_zero_weights():
    torch.manual_seed(0)
    layer = SpikingConv2d(2, 3, kernel_size=3, stride=2, padding=1)
    with torch.no_grad():
        layer.synapse.weight[0, 1] = 0  # pruned connections cost nothing
    spikes = (torch.rand(4, 3, 2, 9, 9) < 0.2).float()
    with torch.no_grad(), SynapticOperationCounter(layer) as counter:
        layer(spikes)
    report = counter.report()
    flat = spikes.reshape(12, 2, 9, 9)
    expected = binarised_conv_output(layer.synapse, flat).sum().item() / 3
    assert report.effective_acs_per_sample == pytest.approx(expected, abs=1e-9)
    assert report.connection_sparsity == pytest.approx(9 / (3 * 2 * 9))


def test_functional_matmuls_are_counted_dense_and_separately():
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(5, 4)
            self.patterns = nn.Parameter(torch.randn(6, 4))

        def forward(self, x):
            return self.proj(x) @ self.patterns.t()

    model = Functional()
    with torch.no_grad(), SynapticOperationCounter(model, batch_dim=0) as counter:
        model(torch.randn(3, 5))
    report = counter.report()
    assert report.samples == 3
    assert report.functional_macs_per_sample == 4 * 6
    assert report.effective_macs_per_sample == pytest.approx(5 * 4 + 4 * 6)


class DenseTwinLayer(nn.Module):
    """Shaped like the ANN-equivalent layers: a synapse, a recurrent nn.Linear, ReLU applied functionally."""

    def __init__(self) -> None:
        super().__init__()
        self.synapse = nn.Linear(3, 2)
        self.recurrent = nn.Linear(2, 2, bias=False)
        _set(self.synapse, [[1, 0, 0], [0, -1, 0]])
        _set(self.recurrent, [[0.5, 0], [0, 0.5]])

    def forward(self, inputs):
        drive = self.synapse(inputs)
        hidden, outputs = torch.zeros_like(drive[0]), []
        for x in drive:
            hidden = torch.relu(x + self.recurrent(hidden))
            outputs.append(hidden)
        return torch.stack(outputs)


def test_dense_twin_counts_macs_and_relu_sparsity():
    layer = DenseTwinLayer()
    x = torch.tensor([[[2.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]])  # (T=2, batch=1, 3): analog input -> MACs
    with torch.no_grad(), SynapticOperationCounter(layer) as counter:
        out = layer(x)
    report = counter.report()
    layers = {layer_["name"]: layer_ for layer_ in report.layers}
    # outputs: t0 = relu(2, 0) = (2, 0); t1 = relu(0 + 0.5*2, 0) = (1, 0) -> 2 of 4 non-zero
    assert out[:, 0, 0].tolist() == [2.0, 1.0]
    assert layers["<root>"]["activation_sparsity"] == 0.5
    # synapse: one non-zero input (feature 0, fan-out 1) -> 1 MAC; dense 2 * 3 * 2
    assert layers["<root>"]["effective_macs_per_sample"] == 1 and layers["<root>"]["dense_ops_per_sample"] == 12
    # recurrent nn.Linear: t0 sees the zero state, t1 sees (2, 0) -> 1 MAC; dense 2 steps * 2 * 2
    assert layers["recurrent"]["effective_macs_per_sample"] == 1 and layers["recurrent"]["dense_ops_per_sample"] == 8
    assert report.effective_acs_per_sample == 0 and report.functional_macs_per_sample == 0


def test_counter_survives_an_exception_inside_the_model():
    net = KnownSpikeNet()
    with pytest.raises(RuntimeError):
        with torch.no_grad(), SynapticOperationCounter(net):
            net(torch.zeros(3, 2, 5))  # wrong feature size
    with torch.no_grad(), SynapticOperationCounter(net) as counter:
        net(_known_input())
    assert counter.report().effective_acs_per_sample == (8 + 7) / 2


def test_counter_without_samples_raises():
    with SynapticOperationCounter(nn.Linear(2, 2)) as counter:
        pass
    with pytest.raises(ValueError):
        counter.report()


class NeuroBenchNet(nn.Module):
    """Batch-first wrapper (NeuroBench's data layout) around a time-major spiking network."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = SpikingConv2d(2, 4, kernel_size=3, stride=2, padding=1, beta=0.5, threshold=0.3)
        self.fc = SpikingLinear(4 * 4 * 4, 10, beta=0.5, threshold=0.3)
        self.readout = nn.Linear(10, 3)

    def forward(self, batch_first):
        spikes = batch_first.transpose(0, 1)
        hidden = self.conv(spikes)
        hidden = self.fc(hidden.flatten(2))
        return self.readout(hidden.mean(0) * 0.7 + 0.01)


def test_agrees_with_neurobench():
    pytest.importorskip("neurobench")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import TorchModel
    from neuromem.neurons.layers import SpikingLayer

    torch.manual_seed(1)
    net = NeuroBenchNet().eval()
    with torch.no_grad():
        net.fc.synapse.weight[:, :5] = 0  # exercise the zero-weight rule in both
    data = (torch.rand(6, 5, 2, 8, 8) < 0.3).float()  # (batch, T, C, H, W)
    labels = torch.zeros(6, dtype=torch.long)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data, labels), batch_size=3)

    model = TorchModel(net)
    model.add_activation_module(SpikingLayer)
    benchmark = Benchmark(
        model, loader, [], [], [[Footprint, ConnectionSparsity], [SynapticOperations, ActivationSparsity]]
    )
    theirs = benchmark.run(quiet=True)

    with torch.no_grad(), SynapticOperationCounter(net, batch_dim=0, count_functional=False) as counter:
        for batch, _ in loader:
            net(batch)
    ours = counter.report()
    assert ours.samples == 6
    assert ours.effective_acs_per_sample == pytest.approx(theirs["SynapticOperations"]["Effective_ACs"])
    assert ours.effective_macs_per_sample == pytest.approx(theirs["SynapticOperations"]["Effective_MACs"])
    assert ours.dense_ops_per_sample == pytest.approx(theirs["SynapticOperations"]["Dense"])
    assert ours.effective_acs_per_sample > 0 and ours.effective_macs_per_sample > 0
    assert ours.activation_sparsity == pytest.approx(theirs["ActivationSparsity"])
    assert ours.footprint_bytes == theirs["Footprint"]
    assert ours.connection_sparsity == pytest.approx(theirs["ConnectionSparsity"], abs=1e-4)


def _report(acs=0.0, macs=0.0, dense=0.0, updates=0.0, spikes=0.0) -> AccountingReport:
    return AccountingReport(
        samples=1,
        activation_sparsity=0.9,
        connection_sparsity=0.0,
        footprint_bytes=0,
        effective_acs_per_sample=acs,
        effective_macs_per_sample=macs,
        dense_ops_per_sample=dense,
        functional_macs_per_sample=0.0,
        neuron_updates_per_sample=updates,
        spikes_per_sample=spikes,
    )


def test_energy_arithmetic_and_columns():
    spiking = _report(acs=100, macs=10, dense=1000, updates=50, spikes=5)
    ann = _report(macs=600, dense=1000)
    assert energy_per_sample(spiking, HOROWITZ_45NM).total_pj == pytest.approx(100 * 0.9 + 10 * 4.6)
    assert ann_energy_per_sample(ann, HOROWITZ_45NM).total_pj == pytest.approx(1000 * 4.6)
    columns = ablation_columns(spiking, ann)
    assert tuple(columns) == ABLATION_COLUMNS
    assert columns["energy_ratio"] == pytest.approx(4600 / 136)
    assert columns["synops_per_sample"] == 110 and columns["dense_macs_per_sample"] == 1000
    loihi = energy_per_sample(spiking, LOIHI).total_pj
    assert loihi == pytest.approx(100 * 23.6 + 10 * 4.6 + 45 * 52 + 5 * 81 + 5 * 1.7)
    zero_skipping = energy_profile("horowitz-45nm", ann_operations="effective")
    assert ann_energy_per_sample(ann, zero_skipping).total_pj == pytest.approx(600 * 4.6)
    cheaper = energy_profile("horowitz-45nm", ac_pj=0.1)
    assert energy_per_sample(spiking, cheaper).total_pj == pytest.approx(10 + 46)
    assert "set by the user" in energy_per_sample(spiking, cheaper).lines()[1]
    lines = energy_assumptions(spiking, ann)
    assert any("Horowitz" in line for line in lines) and "33.82x" in lines[-1]
    assert math.isnan(ablation_columns(_report(), ann)["energy_ratio"])
    with pytest.raises(NeuromemError, match="valid"):
        energy_profile("horowitz-45nm", bogus=1)
    with pytest.raises(NeuromemError, match="loihi"):
        energy_profile("gpu")


class DenseTwinNet(nn.Module):
    """KnownSpikeNet's graph with ReLU instead of LIF (the ANN-equivalent)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
        self.output = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
        self.readout = nn.Linear(2, 2)

    def forward(self, x):
        return self.readout(self.output(self.hidden(x)).mean(0))


def test_accounting_metrics_feed_the_engram_report():
    import json

    metrics = accounting_metrics(KnownSpikeNet().eval(), DenseTwinNet().eval(), [_known_input()])
    assert set(ABLATION_COLUMNS) <= set(metrics)
    assert metrics["synops_per_sample"] == (8 + 7 + 8) / 2
    # the ANN runs every connection at every step: T * (4*3 + 3*2) per sample + readout 2*2
    assert metrics["ann_accounting"]["dense_ops_per_sample"] == 3 * (12 + 6) + 4
    expected_ratio = (3 * 18 + 4) * 4.6 / ((8 + 7) / 2 * 0.9 + 8 / 2 * 4.6)
    assert metrics["energy_ratio"] == pytest.approx(expected_ratio)
    assert set(metrics["layer_sparsity"]) == {"hidden", "output"}
    assert any("ISSCC 2014" in line for line in metrics["energy_assumptions"])
    json.dumps(metrics)  # cell.json must be able to hold it
