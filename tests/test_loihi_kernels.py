"""The Loihi neuron's compiled path (`functional/loihi_kernels.py`) equals its reference loop
(`loihi_reference_sequence`, autograd through every `loihi_step`, the oracle that tests/test_loihi_lava.py
checks against Lava): spikes, voltages and the final state bit for bit, gradients to float rounding, for the
shapes the Loihi layers use (linear, recurrent with either sign of exponent, convolution frames), with the
24-bit wrap, the clip and a bias exercised, under every surrogate; and the layers themselves, fast against
reference. Seconds."""

import pytest
import torch

from neuromem.neurons.functional import loihi_kernels
from neuromem.neurons.functional.loihi import (
    LoihiParameters, LoihiState, loihi_reference_sequence, loihi_sequence,
)
from neuromem.neurons.functional.neuron import neuron_sequence, reference_core
from neuromem.neurons.loihi import LoihiConv2d, LoihiLinear, LoihiSpikeReadout
from neuromem.neurons.surrogates import surrogate_names

pytestmark = pytest.mark.skipif(loihi_kernels.kernel is None, reason="numba is not installed")

F64 = dict(rtol=1e-10, atol=1e-12)


def _run(sequence, activations, p, weight, exp, grad_spikes, grad_voltages, state=None):
    a = activations.clone().requires_grad_()
    w = weight.clone().requires_grad_() if weight is not None else None
    spikes, voltages, final = sequence(a, p, w, exp, state)
    loss = (spikes * grad_spikes).sum() + (voltages * grad_voltages).sum() + 1e-3 * final.voltage.sum()
    grads = torch.autograd.grad(loss, [a] + ([w] if w is not None else []))
    return spikes, voltages, final, grads


CASES = {
    # shape, recurrent exponent (None: feed-forward), parameters, activation range
    "linear": ((40, 5, 24), None, dict(vth=64), 300),
    "linear-bias": ((40, 5, 24), None, dict(vth=80, du=100, dv=50, bias_mant=-7, bias_exp=3), 300),
    "recurrent-right-shift": ((40, 5, 24), -2, dict(vth=64, du=100, dv=50, bias_mant=3, bias_exp=2), 200),
    "recurrent-left-shift": ((40, 5, 24), 1, dict(vth=200), 200),
    "conv-frames": ((30, 2, 3, 5, 5), None, dict(vth=100), 300),
    "readout": ((40, 5, 10), None, dict(du=4095, dv=16, vth=(1 << 17) - 1), 300),
    # activations near 2**17: 64 a reaches Lava's 24-bit wrap of u and the clip of v
    "wrap-and-clip": ((30, 4, 12), None, dict(vth=(1 << 17) - 1, du=0, dv=0), 140_000),
}


@pytest.mark.parametrize("surrogate", surrogate_names())
@pytest.mark.parametrize("case", list(CASES))
def test_compiled_path_equals_the_reference_loop(case, surrogate):
    shape, exp, fields, span = CASES[case]
    generator = torch.Generator().manual_seed(len(case))
    p = LoihiParameters(surrogate=surrogate, surrogate_slope=1.5, **fields)
    activations = torch.randint(-span // 2, span, shape, generator=generator).double()
    weight = None
    if exp is not None:
        weight = 2.0 * torch.randint(-128, 128, (shape[-1], shape[-1]), generator=generator).double()
    grad_spikes = torch.randn(shape, generator=generator, dtype=torch.float64)
    grad_voltages = torch.randn(shape, generator=generator, dtype=torch.float64) * 1e-4
    recurrent_exp = exp or 0
    with reference_core():
        assert not loihi_kernels.kernels_apply(activations, weight, None)
    assert loihi_kernels.kernels_apply(activations, weight, None)
    want = _run(loihi_reference_sequence, activations, p, weight, recurrent_exp, grad_spikes, grad_voltages)
    got = _run(loihi_sequence, activations, p, weight, recurrent_exp, grad_spikes, grad_voltages)
    rate = want[0].mean().item()
    assert 0.02 < rate < 0.98 or case in ("readout", "wrap-and-clip"), rate
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert torch.equal(got[2].current, want[2].current) and torch.equal(got[2].voltage, want[2].voltage)
    assert torch.equal(got[2].spikes, want[2].spikes)
    for g, w in zip(got[3], want[3]):
        torch.testing.assert_close(g, w, **F64)
    if case == "wrap-and-clip":  # the wrap really ran: u crossed 2**23 somewhere
        voltages = want[1]
        assert voltages.abs().max() == (1 << 23) - 1


def test_a_given_state_starts_the_sequence_and_one_needing_a_gradient_runs_the_reference():
    generator = torch.Generator().manual_seed(3)
    p = LoihiParameters(vth=64)
    activations = torch.randint(-100, 300, (20, 3, 8), generator=generator).double()
    state = LoihiState(torch.randint(-5000, 5000, (3, 8), generator=generator).double(),
                       torch.randint(0, 4000, (3, 8), generator=generator).double(), (torch.rand(3, 8) < 0.5).double())
    got = loihi_sequence(activations, p, state=state)
    want = loihi_reference_sequence(activations, p, state=state)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    needing = LoihiState(state.current.clone().requires_grad_(), state.voltage, state.spikes)
    assert not loihi_kernels.kernels_apply(activations, None, needing)


def test_neuron_sequence_runs_the_registered_fast_path_with_the_reference_steps_recurrent_input():
    generator = torch.Generator().manual_seed(5)
    p = LoihiParameters(vth=64)
    activations = torch.randint(-100, 300, (25, 3, 10), generator=generator).double()
    weight = 2.0 * torch.randint(-128, 128, (10, 10), generator=generator).double()
    spikes, final, voltages = neuron_sequence("loihi", activations, p, weight, return_membrane=True)
    with reference_core():
        want, want_final, want_voltages = neuron_sequence("loihi", activations, p, weight, return_membrane=True)
    assert torch.equal(spikes, want) and torch.equal(voltages, want_voltages)
    assert torch.equal(final.current, want_final.current)


@pytest.mark.parametrize("layer", ["linear", "recurrent", "conv", "readout"])
def test_layers_fast_equal_reference(layer):
    torch.manual_seed(0)
    if layer == "conv":
        module = LoihiConv2d(2, 4, 3, padding=1)
        inputs = (torch.rand(15, 3, 2, 8, 8) < 0.3).float()
    elif layer == "readout":
        module = LoihiSpikeReadout(40, 6)
        inputs = (torch.rand(15, 3, 40) < 0.3).float()
    else:
        module = LoihiLinear(40, 24, recurrent=layer == "recurrent", recurrent_exp=-1 if layer == "recurrent" else None)
        inputs = (torch.rand(15, 3, 40) < 0.3).float()

    def run():
        module.zero_grad()
        x = inputs.clone().requires_grad_()
        out = module(x)
        (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        return out.detach(), x.grad, [q.grad.clone() for q in module.parameters()]

    got = run()
    with reference_core():
        want = run()
    assert torch.equal(got[0], want[0])
    with torch.no_grad():  # evaluation: the synapse's integer sums in float32, the same values
        assert torch.equal(module(inputs), want[0])
        assert torch.equal(module(inputs * 3.0), want[0])  # counts are single spikes
    torch.testing.assert_close(got[1], want[1], rtol=1e-5, atol=1e-6)
    for g, w in zip(got[2], want[2]):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
