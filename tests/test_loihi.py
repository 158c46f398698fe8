"""Loihi fixed-point neuron: exact against an independent numpy transcription of Lava's arithmetic; trainable."""

import numpy as np
import pytest
import torch

from neuromem.neurons.functional.loihi import (
    LoihiParameters,
    LoihiState,
    initial_loihi_state,
    loihi_sequence,
    loihi_step,
    quantize_weight,
    shift_activation,
)
from neuromem.neurons.loihi import LoihiLinear, LoihiReadout


def lava_lif_reference(a_in: np.ndarray, du: int, dv: int, vth: int, bias: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy int64 transcription of lava-nc 0.10.0 AbstractPyLifModelFixed / PyLifModelBitAcc.run_spk."""
    u = np.zeros(a_in.shape[1], dtype=np.int64)
    v = np.zeros(a_in.shape[1], dtype=np.int64)
    limit = 2**23
    spikes, volts = [], []
    for a in a_in.astype(np.int64):
        du_ = u * (4096 - (du + 1))
        u = np.sign(du_) * np.right_shift(np.abs(du_), 12) + np.left_shift(a, 6)
        wrapped = np.where(u > limit, u - 2 * limit, u)
        u = np.where(wrapped <= -limit, u + 2 * limit, wrapped)
        dv_ = v * (4096 - dv)
        v = np.clip(np.sign(dv_) * np.right_shift(np.abs(dv_), 12) + u + bias, -limit + 1, limit - 1)
        s = v > (vth << 6)
        v = np.where(s, 0, v)
        spikes.append(s)
        volts.append(v.copy())
    return np.array(spikes), np.array(volts)


@pytest.mark.parametrize("du,dv,vth,bias_mant,bias_exp", [(511, 256, 1024, 0, 0), (0, 4095, 300, -7, 3), (4095, 0, 50000, 100, 6)])
def test_fixed_point_neuron_equals_lava_arithmetic(du, dv, vth, bias_mant, bias_exp):
    rng = np.random.default_rng(du + dv)
    # wide activations reach the 24-bit wrap of u and the clip of v; negative ones exercise truncation toward zero
    a_in = rng.integers(-60000, 90000, size=(80, 64)) * (rng.random((80, 64)) < 0.4)
    p = LoihiParameters(du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp)
    spikes, voltages, _ = loihi_sequence(torch.as_tensor(a_in, dtype=torch.float64)[:, None], p)
    ref_spikes, ref_volts = lava_lif_reference(a_in, du, dv, vth, bias_mant << bias_exp)
    assert ref_spikes.any() and not ref_spikes.all()
    assert np.array_equal(spikes[:, 0].numpy().astype(bool), ref_spikes)
    assert np.array_equal(voltages[:, 0].numpy().astype(np.int64), ref_volts)


def test_dense_shift_is_arithmetic():
    x = torch.tensor([-5.0, -4.0, 3.0, 7.0], dtype=torch.float64)
    assert shift_activation(x, -1).tolist() == [-3.0, -2.0, 1.0, 3.0]  # numpy >> floors
    assert shift_activation(x, 2).tolist() == [-20.0, -16.0, 12.0, 28.0]


def test_weights_are_loihi_integers_with_straight_through_gradient():
    w = torch.linspace(-1.2, 1.2, 101, requires_grad=True)
    q = quantize_weight(w)
    assert q.min() == -256 and q.max() == 254
    assert torch.all(q % 2 == 0)
    q.sum().backward()
    inside = (w.detach() * 128).round().abs() < 127.5
    assert torch.all(w.grad[inside] == 256.0) and torch.all(w.grad[~inside] == 0.0)


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="du"):
        LoihiParameters(du=4096)
    with pytest.raises(ValueError, match="vth"):
        LoihiParameters(vth=1 << 17)


def test_loihi_linear_learns_with_surrogate_gradients():
    torch.manual_seed(0)
    layer = LoihiLinear(40, 8, recurrent=True, vth=256)
    readout = LoihiReadout(8, 2)
    x = (torch.rand(30, 32, 40) < 0.15).double()
    labels = torch.arange(32) % 2
    x[:, labels == 1, :20] = (torch.rand(30, int((labels == 1).sum()), 20) < 0.4).double()
    optimizer = torch.optim.Adam([*layer.parameters(), *readout.parameters()], lr=5e-3)
    losses = []
    for _ in range(25):
        logits = readout(layer(x))[-1] / (64 * 256)
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        optimizer.zero_grad()
        loss.backward()
        assert layer.synapse.weight.grad.abs().sum() > 0 and layer.recurrent.grad.abs().sum() > 0
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        assert (LoihiReadout.decide(readout(layer(x))) == labels).float().mean() > 0.9


def test_layer_adds_one_step_synaptic_delay():
    layer = LoihiLinear(1, 1, vth=1, du=4095, dv=4095)
    with torch.no_grad():
        layer.synapse.weight.fill_(0.5)
    x = torch.zeros(5, 1, 1, dtype=torch.float64)
    x[0] = 1
    spikes = layer(x)[:, 0, 0]
    assert spikes.tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]


def test_step_state_is_integer_valued():
    p = LoihiParameters(du=100, dv=37, vth=2000)
    state = initial_loihi_state(torch.zeros(3, dtype=torch.float64))
    for a in ([1000.0, -333.0, 7.0], [0.0, 5.0, -2.0]):
        _, state = loihi_step(torch.tensor(a, dtype=torch.float64), state, p)
        assert isinstance(state, LoihiState)
        assert torch.equal(state.current, state.current.round()) and torch.equal(state.voltage, state.voltage.round())


def test_layer_fits_float32_models():
    layer = LoihiLinear(6, 4, recurrent=True)
    x = (torch.rand(7, 2, 6) < 0.5).float().requires_grad_()
    out = layer(x)
    assert out.dtype == torch.float32 and out.shape == (7, 2, 4)
    out.sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float32
