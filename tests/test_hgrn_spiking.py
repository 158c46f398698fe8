"""`hgrn-spiking`: HGRN's gated recurrence as learned Loihi decays over a rising lower bound; its gradient, its
per-layer decays in the exported chain, and the chain on Lava bit for bit."""

import copy

import numpy as np
import pytest
import torch

from neuromem.export.hardware import lava_available, verify_on_lava
from neuromem.export.lava import export_lava, model_from_lava
from neuromem.export.model import binary_time_major, chip_network
from neuromem.memory import build_memory, memory_info
from neuromem.memory.hgrn_spiking import HGRULoihiLayer
from neuromem.neurons.functional.loihi import (
    DECAY_UNITY, clip_voltage, decay, delay_one_step, quantize_weight, shift_activation, wrap_current,
)
from neuromem.neurons.functional.surrogate import heaviside_surrogate
from neuromem.neurons.loihi import unary_spikes
from conftest import train_tiny_cell


def _reference_run(layer: HGRULoihiLayer, inputs: torch.Tensor, keeps: torch.Tensor):
    """The neuron step by step with the keeps as tensors (numerators), so autograd differentiates them."""
    p = layer.parameters_
    drive = delay_one_step(layer.project(unary_spikes(inputs)))
    weight = quantize_weight(layer.recurrent).double() if layer.recurrent is not None else None
    current = voltage = spikes = torch.zeros_like(drive[0])
    out, voltages = [], []
    threshold = float(p.effective_threshold)
    for a in drive:
        if weight is not None:
            a = a + shift_activation(spikes @ weight.t(), layer.recurrent_exp)
        current = wrap_current(decay(current, keeps[0]) + a * 64.0)
        voltage = clip_voltage(decay(voltage, keeps[1]) + current)
        spikes = heaviside_surrogate((voltage - threshold) / threshold, p.surrogate, p.surrogate_slope)
        voltage = voltage * (1 - spikes.detach())
        out.append(spikes)
        voltages.append(voltage)
    return torch.stack(out), torch.stack(voltages)


@pytest.mark.parametrize("recurrent", [False, True])
def test_decay_gradient_is_the_step_loops(recurrent):
    torch.manual_seed(0)
    layer = HGRULoihiLayer(20, 10, recurrent=recurrent, init_scale=0.6)
    layer.lower_bound = torch.tensor(0.3)
    inputs = (torch.rand(30, 4, 20) < 0.3).double()
    weights = torch.randn(30, 4, 10, dtype=torch.float64)
    spikes, voltages = layer.run(inputs)
    ((spikes * weights).sum() + 1e-5 * (voltages * weights).sum()).backward()
    fast = layer.gates.grad.clone() * weights.numel()  # the layer averages over its neuron-steps
    layer.gates.grad = None
    forgets = layer.forgets()
    quantized = torch.tensor(layer.keep_numerators(), dtype=forgets.dtype) / DECAY_UNITY
    keeps = (forgets + (quantized - forgets).detach()).double() * DECAY_UNITY
    ref_spikes, ref_voltages = _reference_run(layer, inputs, keeps)
    assert torch.equal(ref_spikes, spikes) and torch.equal(ref_voltages, voltages)  # the chip's arithmetic
    ((ref_spikes * weights).sum() + 1e-5 * (ref_voltages * weights).sum()).backward()
    assert fast.abs().min() > 0
    # the same gradient (the scan recomputes the current in float, the reference truncates)
    assert torch.allclose(fast, layer.gates.grad, rtol=2e-3)


def test_bounds_rise_with_depth_and_each_layer_has_its_own_decays():
    memory = build_memory("hgrn-spiking", {"shd": 12}, dim=8, layers=3, neuron="loihi")
    bounds = memory.lower_bounds()
    assert bounds[0] == 0 and torch.all(bounds[1:] > bounds[:-1])
    layers = memory.chip_layers("shd")
    decays = [(l.neuron.du, l.neuron.dv) for l in layers[1:]]
    # the same gate logits over rising bounds: deeper layers keep more (smaller du, dv), in 12 bits
    assert all(a[0] > b[0] and a[1] > b[1] for a, b in zip(decays, decays[1:]))
    assert all(0 <= du < DECAY_UNITY and 0 < dv < DECAY_UNITY for du, dv in decays)
    memory({"shd": (torch.rand(10, 3, 12) < 0.3).float()})
    copy.deepcopy(memory)  # no graph left on the layers after a forward
    assert memory_info("hgrn-spiking").loihi == "yes"
    for neuron in ("lif", "dense"):  # the model's own layers elsewhere: no learned decays
        other = build_memory("hgrn-spiking", {"shd": 12}, dim=8, neuron=neuron)
        assert other.lower_bounds() is None and not isinstance(other.blocks[0], HGRULoihiLayer)


def test_training_moves_the_decays_and_the_chain_keeps_them():
    net, inputs, _ = train_tiny_cell("shd", (30,), "hgrn-spiking", {"dim": 10, "gain": 1.0}, neuron="loihi",
                                     steps=20, samples=24, max_count=1)
    start = build_memory("hgrn-spiking", {"shd": 12}, dim=10, neuron="loihi")
    assert not torch.equal(net.memory.bound_logits, start.bound_logits)
    assert not all(torch.equal(a.gates, b.gates) for a, b in zip(net.memory.blocks, start.blocks))
    chain = chip_network(net, "shd", (30,))
    memory_layers = chain.layers[-1 - len(net.memory.blocks):-1]
    for layer, block in zip(memory_layers, net.memory.blocks):
        assert (layer.neuron.du, layer.neuron.dv) == (block.neuron.du, block.neuron.dv)
    with torch.no_grad():
        cell = net({"shd": torch.as_tensor(inputs).float()}).logits["shd"].argmax(-1)
        assert torch.equal(chain.predict(binary_time_major(inputs)), cell)


@pytest.mark.skipif(not lava_available(), reason="Lava environment missing (make lava)")
def test_trained_cell_is_bit_exact_on_lava(tmp_path):
    net, inputs, labels = train_tiny_cell("shd", (30,), "hgrn-spiking", {"dim": 10, "gain": 2.0}, neuron="loihi",
                                          steps=30, samples=24, max_count=1)
    chain = chip_network(net, "shd", (30,))
    path = export_lava(chain, tmp_path / "cell.h5", dataset="shd")
    rebuilt = model_from_lava(path)
    assert rebuilt.config.layer_neurons == chain.config.layer_neurons and rebuilt.config.layer_neurons
    report = verify_on_lava(path, inputs[:6], labels[:6], record_voltages=True, workers=1, parallel=3)
    assert report.mismatches == 0 and report.voltages_equal and report.predictions_equal
    assert all(s > 0 for s in report.spikes_per_layer[:-1])  # every layer spiked: the comparison saw activity
    assert report.torch_accuracy == report.lava_accuracy
