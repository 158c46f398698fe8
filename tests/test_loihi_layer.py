"""A Loihi linear layer in one node (`functional/loihi_layer.py`) equals the layer's chain of separate steps
(unary spikes, the 8-bit synapse, the shift, the delay, the compiled neuron) bit for bit: spikes, voltages and
every gradient (weights, recurrent weight, inputs), in float32 and float64 models, sparse and dense input, both
signs of the weight exponent, the readout's voltages; and its spikes, fed on, are taken as binary. Seconds."""

import pytest
import torch

from neuromem.neurons.functional import loihi_kernels, loihi_layer
from neuromem.neurons.loihi import LoihiLinear, LoihiSpikeReadout

pytestmark = pytest.mark.skipif(loihi_kernels.kernel is None, reason="numba is not installed")
apply = loihi_layer._LoihiLinearLayer.apply


def _chain(monkeypatch):
    """The layers' step-by-step chain: the one-node path switched off."""
    monkeypatch.setattr(loihi_layer, "applies", lambda *a, **k: False)


def _inputs(shape, density, dtype, seed, counts=False):
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=generator) < density).to(dtype)
    if counts:  # event counts: > 1 clipped to one spike, gradient straight through
        x = x * torch.randint(1, 4, shape, generator=generator).to(dtype)
    return x


def _two_layers(seed, dtype, recurrent, weight_exp, out=72):
    torch.manual_seed(seed)
    first = LoihiLinear(30, out, recurrent=recurrent, vth=64, weight_exp=weight_exp, init_scale=0.6)
    second = LoihiLinear(out, 16, vth=48, init_scale=0.8)
    readout = LoihiSpikeReadout(16, 5)
    return [m.to(dtype) for m in (first, second, readout)]


def _step(layers, x):
    x = x.clone().requires_grad_()
    first, second, readout = layers
    hidden = first(x)
    spikes = second(hidden)
    logits = readout(spikes)
    voltages = first.run(x, x.dtype)[1]
    loss = logits.pow(2).sum() + 0.1 * spikes.sum() + 1e-3 * hidden.mean() + 1e-6 * voltages.sum()
    parameters = [p for layer in layers for p in layer.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [x] + parameters)
    return [hidden, spikes, logits, voltages, *grads]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("weight_exp", [0, 2, -1])
@pytest.mark.parametrize("density", [0.03, 0.4])  # the synapse's sparse scatter, the dense product
def test_one_node_equals_the_chain(monkeypatch, dtype, recurrent, weight_exp, density):
    x = _inputs((20, 6, 30), density, dtype, seed=3, counts=True)
    calls = []
    with monkeypatch.context() as patch:
        patch.setattr(loihi_layer._LoihiLinearLayer, "apply", lambda *a: calls.append(1) or apply(*a))
        fast = _step(_two_layers(1, dtype, recurrent, weight_exp), x)
    assert len(calls) == 4  # every layer (and the voltages' run) in one node
    with monkeypatch.context() as patch:
        _chain(patch)
        reference = _step(_two_layers(1, dtype, recurrent, weight_exp), x)
    assert fast[1].sum() > 0 and fast[0].sum() > 0  # the layers fire: spikes and gradients are exercised
    for ours, theirs in zip(fast, reference):
        assert ours.dtype == theirs.dtype
        assert torch.equal(ours, theirs)


def test_its_spikes_are_taken_as_binary_and_counts_are_not():
    layer = LoihiLinear(30, 24, vth=64, init_scale=0.6)
    counts = _inputs((10, 4, 30), 0.2, torch.float32, seed=5, counts=True)
    assert not loihi_layer.known_binary(counts)
    spikes = layer(counts)
    assert loihi_layer.known_binary(spikes)
    spikes.mul_(2.0)  # modified in place: no longer known
    assert not loihi_layer.known_binary(spikes)


def test_under_no_grad_equals_the_chain(monkeypatch):
    layers = _two_layers(2, torch.float32, True, 0)
    x = _inputs((15, 3, 30), 0.1, torch.float32, seed=7)
    with torch.no_grad():
        fast = [layers[0].run(x)[0], layers[2](layers[1](layers[0](x)))]
        with monkeypatch.context() as patch:
            _chain(patch)
            reference = [layers[0].run(x)[0], layers[2](layers[1](layers[0](x)))]
    assert fast[0].dtype == torch.float64
    for ours, theirs in zip(fast, reference):
        assert torch.equal(ours, theirs)
