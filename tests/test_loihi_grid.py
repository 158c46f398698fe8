"""Loihi neurons in the ablation grid: the same front ends and the spiking memories on Loihi 2
fixed-point layers, trained by the grid's trainer; capabilities say what can run on a chip."""

import numpy as np
import pytest
import torch

from neuromem.memory import build_memory, memory_info, memory_names
from neuromem.memory.base import OUTPUT_SPIKES, loihi_memory_names
from neuromem.models import build_network
from neuromem.neurons.functional.loihi import quantize_weight
from neuromem.neurons.loihi import LoihiConv2d, LoihiLinear, LoihiSpikeReadout, TransposedQuantizedDense


@pytest.mark.parametrize("modality,shape,steps", [("shd", (40,), 12), ("nmnist", (2, 12, 12), 8)])
@pytest.mark.parametrize("memory", ["hopfield-spiking", "scl-spiking"])
def test_loihi_cell_is_all_chip_layers_and_trains(modality, shape, steps, memory):
    torch.manual_seed(0)
    net = build_network({modality: shape}, {modality: 3}, memory, hidden=16, neuron="loihi",
                        memory_options={"dim": 8, **({"num_patterns": 6} if memory == "hopfield-spiking" else {"hidden": 12})})
    front = net.front_ends[modality]
    layers = [m for m in front.modules() if isinstance(m, (LoihiLinear, LoihiConv2d))]
    assert len(layers) == (2 if modality == "shd" else 3)
    assert all(isinstance(l, (LoihiLinear, LoihiConv2d)) for l in net.memory.chip_layers(modality))
    assert isinstance(net.readouts[modality], LoihiSpikeReadout)
    x = torch.randint(0, 3, (6, steps, *shape)).float()
    out = net({modality: x})
    spikes = out.memory.extras[OUTPUT_SPIKES][modality]
    assert spikes.shape == (steps, 6, 8) and set(spikes.unique().tolist()) <= {0.0, 1.0}
    loss = torch.nn.functional.cross_entropy(out.logits[modality], torch.tensor([0, 1, 2, 0, 1, 2]))
    loss.backward()
    grads = [p.grad for n, p in net.named_parameters() if p.requires_grad and "projection_head" not in n]
    assert all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)


def test_hopfield_retrieval_is_the_transpose_of_the_stored_patterns():
    memory = build_memory("hopfield-spiking", {"shd": 10}, dim=8, num_patterns=5, relay=0, neuron="loihi")
    tied = memory.retrieval.synapse
    assert isinstance(tied, TransposedQuantizedDense)
    assert torch.equal(tied.integer_weight(), quantize_weight(memory.patterns.synapse.weight).t())
    # no weight of its own: the optimizer sees each stored pattern once
    names = [n for n, _ in memory.named_parameters()]
    assert not any(n.startswith("retrieval.synapse") for n in names)
    lateral = memory.patterns.recurrent
    assert not lateral.requires_grad and torch.all(lateral.diagonal() == 0) and torch.all(lateral.sum(1) < 0)
    lif = build_memory("hopfield-spiking", {"shd": 10}, dim=8, num_patterns=5, relay=0, neuron="lif")
    assert torch.equal(lif.retrieval.synapse.weight, lif.patterns.synapse.weight.t())


def test_loihi_inputs_are_single_spikes():
    torch.manual_seed(0)
    layer = LoihiLinear(5, 4, vth=1)
    counts = torch.tensor([[[0.0, 3.0, 1.0, 0.0, 7.0]]]).repeat(3, 1, 1)
    assert torch.equal(layer.run(counts)[1], layer.run((counts > 0).float())[1])


def test_capabilities_name_one_reason_and_exportable_modules_exist():
    exportable = loihi_memory_names()
    assert {"hopfield-spiking", "scl-spiking"} <= set(exportable)
    for name in memory_names():
        info = memory_info(name)
        assert info.loihi_exportable == (name in exportable)
        assert info.loihi == "yes" if info.loihi_exportable else info.loihi.startswith("no: ") and info.loihi_reason
    assert "multiplicative gates" in memory_info("hgrn").loihi_reason
    assert "energy descent" in memory_info("cmhan").loihi_reason
    assert "test time" in memory_info("ttt").loihi_reason
    assert "softmax" in memory_info("hopfield").loihi_reason
