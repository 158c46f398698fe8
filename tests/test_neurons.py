"""The spiking core matches snnTorch's reference neurons step for step."""

import pytest
import torch

from neuromem.neurons import CUBAParameters, LIFParameters, SpikingLinear, cuba_sequence, lif_sequence

snntorch = pytest.importorskip("snntorch")


def _reference(neuron, currents):
    mem = neuron.init_leaky() if hasattr(neuron, "init_leaky") else None
    spikes, membranes = [], []
    for x in currents:
        spk, mem = neuron(x, mem)
        spikes.append(spk)
        membranes.append(mem)
    return torch.stack(spikes), torch.stack(membranes)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_lif_equals_snntorch_leaky(reset):
    torch.manual_seed(0)
    currents = torch.randn(60, 8, 32) * 0.8 + 0.3
    params = LIFParameters(beta=0.85, threshold=1.0, reset=reset)
    ours, _, membranes = lif_sequence(currents, params, return_membrane=True)
    ref_spikes, ref_membranes = _reference(snntorch.Leaky(beta=0.85, threshold=1.0, reset_mechanism=reset), currents)
    assert ours.sum() > 0 and ours.mean() < 0.9  # the test exercises both spiking and silence
    assert torch.equal(ours, ref_spikes)
    torch.testing.assert_close(membranes, ref_membranes)


def test_cuba_equals_snntorch_synaptic():
    torch.manual_seed(1)
    currents = torch.randn(50, 4, 16) * 0.5 + 0.1
    params = CUBAParameters(alpha=0.7, beta=0.9, threshold=1.0)
    ours, _ = cuba_sequence(currents, params)
    neuron = snntorch.Synaptic(alpha=0.7, beta=0.9, threshold=1.0)
    syn, mem = neuron.init_synaptic()
    ref = []
    for x in currents:
        spk, syn, mem = neuron(x, syn, mem)
        ref.append(spk)
    assert ours.sum() > 0
    assert torch.equal(ours, torch.stack(ref))


def test_surrogate_gradient_matches_snntorch_atan():
    torch.manual_seed(2)
    currents = (torch.randn(20, 3, 10) * 0.8 + 0.4).requires_grad_()
    ours, _ = lif_sequence(currents, LIFParameters(beta=0.9, surrogate="atan", surrogate_slope=2.0))
    ours.sum().backward()
    ours_grad = currents.grad.clone()
    currents.grad = None
    ref, _ = _reference(snntorch.Leaky(beta=0.9, spike_grad=snntorch.surrogate.atan()), currents)
    ref.sum().backward()
    torch.testing.assert_close(ours_grad, currents.grad)


def test_recurrent_layer_trains():
    torch.manual_seed(3)
    layer = SpikingLinear(12, 16, recurrent=True, beta=0.9)
    spikes = layer((torch.rand(25, 5, 12) < 0.3).float() * 2)
    assert spikes.shape == (25, 5, 16)
    spikes.sum().backward()
    assert layer.recurrent.grad is not None and layer.recurrent.grad.abs().sum() > 0


def _template_models():
    from neuromem.neurons.models import get_neuron, neuron_names

    return [name for name in neuron_names() if get_neuron(name).spiking_layers]


@pytest.mark.parametrize("neuron", _template_models())
def test_every_spiking_model_builds_both_front_ends_and_trains(neuron):
    """Each registered spiking model is a --neuron choice: the SHD and N-MNIST front ends build
    with it, spike, and pass gradients to every weight."""
    from neuromem.models.frontends import NEURON_LAYERS, AudioFrontEnd, VisualFrontEnd

    assert neuron in NEURON_LAYERS
    torch.manual_seed(4)
    for front_end, inputs in (
        (AudioFrontEnd((40,), hidden=24, neuron=neuron), (torch.rand(20, 3, 40) < 0.3).float()),
        (VisualFrontEnd((2, 12, 12), hidden=24, neuron=neuron), (torch.rand(8, 3, 2, 12, 12) < 0.3).float() * 2),
    ):
        spikes = front_end(inputs)
        assert spikes.shape[:2] == inputs.shape[:2] and spikes.shape[-1] == 24
        (spikes * torch.linspace(0.5, 1.5, 24)).sum().backward()
        first = next(front_end.parameters())
        assert first.grad is not None and first.grad.abs().sum() > 0
