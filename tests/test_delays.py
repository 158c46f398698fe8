"""Learnable synaptic delays (DCLS): a synapse kind of the audio front end (`--front-option delays=D`).

Without delays the front end is the network it was; the delay positions get gradients; rounded delays are
exact integer-step shifts; the Loihi synapse reproduces Lava's DelaySparse arithmetic (checked against a
literal copy of its update here, and against Lava itself on a small trained cell); NIR refuses delays."""

import numpy as np
import pytest
import torch

from neuromem.errors import NeuromemError
from neuromem.export.model import LoihiNetwork, LoihiNetworkConfig, binary_time_major, chip_network
from neuromem.export.hardware import lava_available
from neuromem.models import build_network
from neuromem.models.frontends import AudioFrontEnd
from neuromem.neurons.delays import (
    DelayedLinear,
    DelayedQuantizedDense,
    anneal_delays,
    causal_delay_conv,
    delay_synapses,
    delayed_synapses,
    diagonal_sum,
    per_delay_sums,
    round_delays,
)
from neuromem.neurons.functional.loihi import delay_one_step
from neuromem.neurons.loihi import LoihiLinear

needs_lava = pytest.mark.skipif(not lava_available(), reason="Lava environment .venv-lava missing (run `make lava`)")
NEURONS = ("lif", "loihi", "dense")


def spikes(steps=12, batch=3, channels=30, rate=0.3, seed=0):
    """Binary (T, batch, channels); seed None: the global generator's next draw."""
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return (torch.rand(steps, batch, channels, generator=generator) < rate).float()


@pytest.mark.parametrize("neuron", NEURONS)
def test_no_delays_is_the_network_as_before(neuron):
    torch.manual_seed(0)
    before = AudioFrontEnd((30,), hidden=8, neuron=neuron)
    torch.manual_seed(0)
    zero = AudioFrontEnd((30,), hidden=8, neuron=neuron, delays=0)
    assert not list(delayed_synapses(zero))
    assert [type(l.synapse) for l in zero.layers] == [type(l.synapse) for l in before.layers]
    assert zero.state_dict().keys() == before.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(zero.state_dict().values(), before.state_dict().values()))
    x = spikes()
    assert torch.equal(zero(x), before(x))
    torch.manual_seed(0)
    AudioFrontEnd((30,), hidden=8, neuron=neuron, delays=0)
    after_zero = torch.rand(3)
    torch.manual_seed(0)
    AudioFrontEnd((30,), hidden=8, neuron=neuron)
    assert torch.equal(torch.rand(3), after_zero)  # no random draws of its own: the rest of a cell is as before
    with pytest.raises(ValueError, match="delays"):
        AudioFrontEnd((30,), hidden=8, neuron=neuron, delays=-1)


@pytest.mark.parametrize("neuron", NEURONS)
def test_delays_keep_the_weights_and_delay_only_the_feed_forward_synapses(neuron):
    torch.manual_seed(0)
    plain = AudioFrontEnd((30,), hidden=8, neuron=neuron)
    torch.manual_seed(0)
    delayed = AudioFrontEnd((30,), hidden=8, neuron=neuron, delays=5)
    for a, b in zip(plain.layers, delayed.layers):
        assert isinstance(b.synapse, (DelayedLinear, DelayedQuantizedDense))
        assert torch.equal(a.synapse.weight, b.synapse.weight)
        positions = b.synapse.positions().detach()
        assert positions.shape == b.synapse.weight.shape
        assert 0 <= float(positions.min()) and float(positions.max()) <= 4 and float(positions.std()) > 0.5
    recurrent = [layer.recurrent for layer in (plain.layers[1], delayed.layers[1])]
    assert torch.equal(*(getattr(r, "weight", r) for r in recurrent))  # undelayed, untouched
    assert delayed(spikes()).shape == (12, 3, 8)


@pytest.mark.parametrize("neuron", ("lif", "loihi"))
def test_gradient_reaches_the_delay_positions(neuron):
    torch.manual_seed(0)
    front = AudioFrontEnd((30,), hidden=8, neuron=neuron, delays=6)
    out = front(spikes(rate=0.5))
    assert out.sum() > 0
    (out * torch.linspace(0, 1, out.shape[0])[:, None, None]).sum().backward()  # later spikes count more
    for layer in front.layers:
        assert layer.synapse.delay.grad is not None and layer.synapse.delay.grad.abs().sum() > 0
        assert layer.synapse.weight.grad.abs().sum() > 0


def test_delays_learn_a_known_shift():
    """Weights fixed, delays from a uniform start: Adam at the weights' usual rate (2e-3) moves them onto
    the target delays (the positions count in DELAY_UNIT steps: DCLS's 100x learning rate)."""
    torch.manual_seed(0)
    synapse = DelayedLinear(torch.nn.Linear(8, 6, bias=False), window=12, sigma=2.0)
    synapse.weight.requires_grad_(False)
    target = torch.randint(0, 12, (6, 8))
    kernel = synapse.weight.detach().unsqueeze(-1) * torch.nn.functional.one_hot(target, 12).float()
    start = (synapse.positions().detach() - target).abs().mean()
    optimizer = torch.optim.Adam([synapse.delay], lr=2e-3)
    for _ in range(150):
        x = spikes(steps=40, batch=16, channels=8, rate=0.2, seed=None)
        loss = (synapse(x) - causal_delay_conv(x, kernel)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert (synapse.positions().detach() - target).abs().mean() < start / 4
    assert (synapse.integer_delays() == target).float().mean() > 0.6


def test_a_delayed_spike_arrives_its_rounded_delay_later():
    torch.manual_seed(0)
    source = torch.nn.Linear(4, 3)
    synapse = DelayedLinear(source, window=7, sigma=1.0)
    with torch.no_grad():
        synapse.bias.zero_()
    synapse.set_delays(torch.tensor([[0.2, 1.6, 3.0, 6.4], [2.5, 0.0, 5.7, 4.4], [3.49, 2.51, 1.0, 6.0]]))
    assert round_delays(synapse) == 1
    delays = synapse.integer_delays()
    assert delays.tolist() == [[0, 2, 3, 6], [2, 0, 6, 4], [3, 3, 1, 6]]  # clamped into 0..6, rounded
    for channel in range(4):
        for start in (0, 3):
            x = torch.zeros(12, 1, 4)
            x[start, 0, channel] = 1.0
            out = synapse(x)[:, 0]
            expected = torch.zeros(12, 3)
            for o in range(3):
                if start + delays[o, channel] < 12:
                    expected[start + delays[o, channel], o] = synapse.weight[o, channel]
            assert torch.equal(out.detach(), expected.detach())


@pytest.mark.parametrize("rate", (0.03, 0.5))  # the sparse sums over active inputs, and the dense matmul
def test_per_delay_sums_are_the_causal_convolution(rate):
    torch.manual_seed(0)
    x = spikes(steps=30, batch=4, channels=40, rate=rate).requires_grad_()
    kernel = torch.randn(16, 40, 7, requires_grad=True)
    fast = diagonal_sum(per_delay_sums(x, kernel))
    reference = causal_delay_conv(x, kernel)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(reference)
    for a, b in zip(torch.autograd.grad(fast, (x, kernel), grad), torch.autograd.grad(reference, (x, kernel), grad)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_soft_taps_interpolate_and_anneal_to_the_rounded_shift():
    torch.manual_seed(0)
    synapse = DelayedLinear(torch.nn.Linear(6, 5), window=9, sigma=2.0)
    x = spikes(steps=20, batch=2, channels=6, rate=0.4)
    soft = synapse(x)
    anneal_delays(synapse, 0.0)
    assert synapse.sigma == 4.5 and not synapse.rounded  # DCLS: sigma starts at half the window
    anneal_delays(synapse, 1.0)
    assert synapse.sigma == pytest.approx(0.5) and bool(synapse.rounded)
    rounded = synapse(x)
    assert not torch.allclose(soft, rounded)
    synapse.set_delays(synapse.integer_delays().float())
    with torch.no_grad():  # integer positions: a narrow Gaussian is the shift itself
        synapse.rounded.fill_(False)
        synapse.sigma = 0.05
        torch.testing.assert_close(synapse(x), rounded)
    state = synapse.state_dict()
    assert "rounded" in state and "delay" in state  # the rounding travels with the weights


def lava_delay_sparse(weights, delays, weight_exp, spikes_in):
    """Lava 0.10's PyDelaySparseModelBitAcc / PyDelayDenseModelBitAcc.run_spk, literally (one sample): each
    step sends a_buff[:, 0], then adds this step's per-delay sums (shifted) into the rolled buffer."""
    max_delay = int(delays.max())
    a_buff = np.zeros((weights.shape[0], max_delay + 1), dtype=np.int64)
    sent = []
    for s in spikes_in.astype(bool):
        sent.append(a_buff[:, 0].copy())
        a_accum = np.stack([np.where(delays == k, weights, 0) @ s for k in range(max_delay + 1)], axis=1)
        a_buff[:, 0] = 0
        a_buff = np.roll(a_buff, -1)  # no axis: the flattened roll Lava does
        a_buff += np.left_shift(a_accum, weight_exp) if weight_exp > 0 else np.right_shift(a_accum, -weight_exp)
    return np.stack(sent)


@pytest.mark.parametrize("weight_exp", (0, 1, -2))
def test_loihi_delayed_synapse_is_lavas_delay_sparse(weight_exp):
    """a spike at step t over delay d reaches the neurons at t + 1 + d: the Dense's own step, then d."""
    torch.manual_seed(1)
    layer = delay_synapses(LoihiLinear(10, 6, weight_exp=weight_exp, init_scale=1.0), 8)
    x = spikes(steps=25, batch=2, channels=10, rate=0.4, seed=2).double()
    with torch.no_grad():
        activations = delay_one_step(layer.project(x))
    weights = layer.synapse.integer_weight().detach().numpy().astype(np.int64)
    delays = layer.synapse.integer_delays().numpy()
    assert delays.min() == 0 and delays.max() == 7
    for b in range(2):
        expected = lava_delay_sparse(weights, delays, weight_exp, x[:, b].numpy())
        np.testing.assert_array_equal(activations[:, b].numpy(), expected)


def test_loihi_delays_are_6_bit_and_rounded_from_the_start():
    with pytest.raises(ValueError, match="6-bit"):
        AudioFrontEnd((30,), hidden=8, neuron="loihi", delays=65)
    front = AudioFrontEnd((30,), hidden=8, neuron="loihi", delays=64)
    assert all(bool(s.rounded) for s in delayed_synapses(front))


def small_delayed_cell(delays=6, steps=16, seed=0):
    """A tiny SHD-shaped Loihi cell with delayed front-end synapses, trained a few steps."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build_network({"shd": (30,)}, {"shd": 3}, "hopfield-spiking", hidden=12, neuron="loihi",
                        front_options={"delays": delays}, memory_options={"dim": 8, "relay": 0})
    inputs = rng.integers(0, 2, (24, steps, 30)) * (rng.random((24, steps, 30)) < 0.4)
    labels = rng.integers(0, 3, 24)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-2)
    for start in range(0, 24, 8):
        out = net({"shd": torch.as_tensor(inputs[start:start + 8]).float()})
        loss = torch.nn.functional.cross_entropy(out.logits["shd"], torch.as_tensor(labels[start:start + 8]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval(), inputs, labels


def test_nir_export_refuses_delays_and_names_lava(tmp_path):
    from neuromem.export.nir import write_nir

    net, _, _ = small_delayed_cell()
    chain = chip_network(net, "shd", (30,))
    assert chain.config.delays[:2] == (6, 6)
    with pytest.raises(NeuromemError, match=r"no delay node.*--to lava"):
        write_nir(chain, tmp_path / "cell.nir")
    assert not (tmp_path / "cell.nir").exists()


@needs_lava
def test_small_trained_delayed_cell_is_bit_exact_on_lava(tmp_path, monkeypatch):
    import h5py

    from neuromem.export.hardware import compare, run_lava_split, verify_on_lava
    from neuromem.export.lava import export_lava, model_from_lava

    net, inputs, labels = small_delayed_cell()
    with torch.no_grad():
        decisions = net({"shd": torch.as_tensor(inputs).float()}).logits["shd"].argmax(-1).numpy()
    chain = chip_network(net, "shd", (30,))
    path = export_lava(chain, tmp_path / "cell.h5", dataset="shd")
    with h5py.File(path) as handle:
        stored = [np.asarray(handle[f"layer/{i}/synapseDelay"]) for i in (1, 2)]
        assert "synapseDelay" not in handle["layer/3"]
    front = [l.synapse for l in net.front_ends["shd"].layers]
    for delays, synapse in zip(stored, front):
        np.testing.assert_array_equal(delays, synapse.integer_delays().numpy())
        assert len(np.unique(delays)) > 3  # real, varied delays
    rebuilt = model_from_lava(path)
    with torch.no_grad():
        assert np.array_equal(rebuilt.predict(binary_time_major(inputs)).numpy(), decisions)
    # 8 samples, 3 side by side: groups follow one another in one Lava run, the delay buffers reset between them
    report = verify_on_lava(path, inputs[:8], labels[:8], record_voltages=True, workers=1, parallel=3)
    assert report.mismatches == 0 and report.voltages_equal and report.predictions_equal, report.lines()
    assert report.spikes_per_layer[0] > 20 and report.spikes_per_layer[1] > 5, report.spikes_per_layer
    # Lava's own DelaySparse model (the runner builds its per-delay weight stack once): the same, bit for bit
    monkeypatch.setenv("NEUROMEM_LAVA_STOCK_DELAYS", "1")
    lava = run_lava_split(path, inputs[:8], True, 1, 3)
    stock = compare(rebuilt, lava, inputs[:8], labels[:8])
    assert stock.mismatches == 0 and stock.voltages_equal
    # the check sees the delays: the same chain with every delay one step longer disagrees with Lava
    for layer in rebuilt.hidden[:2]:
        layer.synapse.set_delays(layer.synapse.integer_delays() + 1)
    assert compare(rebuilt, lava, inputs[:8], labels[:8]).mismatches > 0


@needs_lava
def test_delays_with_a_negative_weight_exponent_are_bit_exact_on_lava(tmp_path):
    """Lava floors each delay's sum on its own before they meet in the buffer: a right shift is not linear."""
    from neuromem.export.hardware import verify_on_lava
    from neuromem.export.lava import export_lava

    torch.manual_seed(3)
    config = LoihiNetworkConfig(input_size=20, hidden_sizes=(16, 10), recurrent=(False, True), num_classes=3,
                                hidden={"du": 511, "dv": 256, "vth": 200, "weight_exp": -1}, delays=(9, 4))
    model = LoihiNetwork(config)
    with torch.no_grad():
        for layer in model.layers:
            layer.synapse.weight.uniform_(-1.0, 1.0)
    inputs = (np.random.default_rng(3).random((4, 18, 20)) < 0.4).astype(np.int64)
    path = export_lava(model.eval(), tmp_path / "net.h5")
    report = verify_on_lava(path, inputs, record_voltages=True, workers=1, parallel=2)
    assert report.mismatches == 0 and report.voltages_equal, report.lines()
    assert report.spikes_per_layer[0] > 0 and report.spikes_per_layer[1] > 0, report.spikes_per_layer
