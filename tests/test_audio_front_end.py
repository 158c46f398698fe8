"""The auditory front end's defaults: membrane decay and initial weight gain (chosen on the speech stand-in)."""

import pytest
import torch

from neuromem.models.frontends import AudioFrontEnd, VisualFrontEnd, build_front_end


def test_float_spiking_layers_take_the_audio_membrane_decay_unless_beta_is_given():
    for neuron in ("lif", "alif", "cuba"):
        front = AudioFrontEnd((40,), hidden=8, neuron=neuron)
        assert [layer.neuron.beta for layer in front.layers] == [AudioFrontEnd.membrane_decay] * 2
    given = AudioFrontEnd((40,), hidden=8, beta=0.95)
    assert [layer.neuron.beta for layer in given.layers] == [0.95, 0.95]
    visual = VisualFrontEnd((2, 34, 34), hidden=8)
    assert visual.dense.neuron.beta == 0.9  # the visual side keeps the neuron model's default


def test_init_gain_scales_the_feed_forward_weights_of_float_spiking_layers_only():
    torch.manual_seed(0)
    plain = AudioFrontEnd((40,), hidden=8, init_gain=1.0)
    torch.manual_seed(0)
    scaled = AudioFrontEnd((40,), hidden=8, init_gain=3.0)
    for a, b in zip(plain.layers, scaled.layers):
        torch.testing.assert_close(b.synapse.weight, 3.0 * a.synapse.weight)
        torch.testing.assert_close(b.synapse.bias, a.synapse.bias)
    torch.testing.assert_close(scaled.layers[1].recurrent, plain.layers[1].recurrent)
    torch.manual_seed(0)
    dense_plain = AudioFrontEnd((40,), hidden=8, neuron="dense", init_gain=1.0)
    torch.manual_seed(0)
    dense_scaled = AudioFrontEnd((40,), hidden=8, neuron="dense", init_gain=3.0)
    assert all(torch.equal(p, q) for p, q in zip(dense_plain.parameters(), dense_scaled.parameters()))
    loihi = AudioFrontEnd((40,), hidden=8, neuron="loihi")  # its own init_scale, no beta
    assert loihi(torch.zeros(5, 2, 40)).shape == (5, 2, 8)
    with pytest.raises(ValueError, match="init_gain"):
        AudioFrontEnd((40,), hidden=8, init_gain=0.0)


def test_default_front_end_fires_at_init_on_sparse_cochlear_input():
    # 2% of 700 channels active per step, like the speech stand-in: at torch's default init (gain 1)
    # the recurrent layer is nearly silent; the default gain makes both layers fire
    torch.manual_seed(0)
    inputs = (torch.rand(50, 16, 700) < 0.02).float()
    rates = {}
    for gain in (1.0, 4.0):
        torch.manual_seed(0)
        front = build_front_end("shd", (700,), hidden=64, init_gain=gain)
        first = front.layers[0](inputs)
        rates[gain] = (first.mean().item(), front.layers[1](first).mean().item())
    assert rates[4.0][0] > 2 * rates[1.0][0] and rates[4.0][1] > 2 * rates[1.0][1]
    assert min(rates[4.0]) > 0.005
