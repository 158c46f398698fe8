"""SE-adLIF (Baronig et al. 2025): the reference step is the paper's update, the fast path (its own
numba kernels / torch loop, registered as the model's `sequence`) equals it, and the gradient flows
through the adaptation current both ways. The registry-driven tests (tests/test_fast_core.py,
tests/test_neurons.py) check it with every surrogate, reset, recurrence, dtype and layer too."""

import math

import pytest
import torch

from neuromem.neurons import SpikingConv2d, SpikingLinear
from neuromem.neurons.functional import neuron
from neuromem.neurons.functional.neuron import neuron_sequence, reference_core
from neuromem.neurons.functional.surrogate import heaviside_surrogate
from neuromem.neurons.models import get_neuron, neuron_names
from neuromem.neurons.models.se_adlif import SEAdLIFParameters, SEAdLIFState

F64 = dict(rtol=1e-10, atol=1e-12)


@pytest.fixture(params=["numba", "torch-loop"])
def kernel(request, monkeypatch):
    if request.param == "torch-loop":
        monkeypatch.setattr(neuron, "_numba", None)
    elif neuron._numba is None:
        pytest.skip("numba is not installed")
    return request.param


def _inputs(seed, steps=60, batch=5, size=20, dtype=torch.float64, scale=1.2, offset=0.3):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(steps, batch, size, generator=generator, dtype=dtype) * scale + offset


def _paper_sequence(inputs, p):
    """The update as the paper's code writes it: the state holds u after its reset, in the paper's
    units (threshold (1 - alpha) theta); w reads the new (reset) u_t and the new spike z_t
    (symplectic Euler). The surrogate reads (u - theta_p) / (1 - alpha), as the model's m - theta."""
    alpha, rho = p.beta, p.rho
    theta = (1 - alpha) * p.threshold
    u = w = z = torch.zeros_like(inputs[0])
    spikes, resets = [], []
    for current in inputs:
        u = alpha * u + (1 - alpha) * (current - w)
        z = heaviside_surrogate((u - theta) / (1 - alpha), p.surrogate, p.surrogate_slope)
        u = u * (1 - z.detach()) if p.reset == "zero" else u - theta * z.detach()
        w = rho * w + (1 - rho) * (p.a * u + p.b * z)
        spikes.append(z)
        resets.append(u)
    return torch.stack(spikes), torch.stack(resets), w


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_reference_step_is_the_papers_symplectic_update(reset):
    """Spikes and gradients as the paper's code; the kept membrane is u before its reset."""
    p = SEAdLIFParameters(beta=0.8, rho=0.9, a=3.0, b=6.0, reset=reset)
    inputs = _inputs(1).requires_grad_()
    paper_spikes, paper_u, paper_w = _paper_sequence(inputs, p)
    with reference_core():
        spikes, final, membranes = neuron_sequence("se-adlif", inputs, p, return_membrane=True)
    assert 0.02 < spikes.mean() < 0.5
    assert torch.equal(spikes, paper_spikes)
    reset_membranes = membranes * (1 - spikes) if reset == "zero" else membranes - p.threshold * spikes
    torch.testing.assert_close((1 - p.beta) * reset_membranes, paper_u, **F64)
    torch.testing.assert_close(final.adaptation, paper_w, **F64)
    weights = torch.linspace(0.5, 1.5, spikes.shape[-1], dtype=spikes.dtype)
    (ours,) = torch.autograd.grad((spikes * weights).sum() + final.adaptation.sum(), inputs)
    (theirs,) = torch.autograd.grad((paper_spikes * weights).sum() + paper_w.sum(), inputs)
    torch.testing.assert_close(ours, theirs, **F64)


def test_fast_path_is_the_models_own_node():
    """`neuron_sequence` dispatches to the model's registered `sequence` (one autograd node), not the
    template kernels and not the reference loop."""
    model = get_neuron("se-adlif")
    assert "se-adlif" in neuron_names() and model.dynamics is None and model.sequence is not None
    assert model.has_fast_path and not model.has_kernels and not model.fused_conv and model.spiking_layers
    inputs = _inputs(2).requires_grad_()
    spikes, _ = neuron_sequence("se-adlif", inputs, SEAdLIFParameters())
    assert type(spikes.grad_fn).__name__ == "_SEAdLIFSequenceBackward"
    with reference_core():
        spikes, _ = neuron_sequence("se-adlif", inputs, SEAdLIFParameters())
    assert "_SEAdLIF" not in type(spikes.grad_fn).__name__


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_membrane_gradient_through_the_adaptation_equals_finite_differences(reset, kernel):
    """A loss on the membranes and the final adaptation, with the spikes held (a small step flips
    none): the fast backward's input and initial-state gradients equal central differences, so the
    two-way coupling m -> w -> m is differentiated, not detached. (b = 0 and no recurrent weight:
    otherwise the surrogate adds gradient that differences of held spikes cannot see; the reference
    comparisons in test_fast_core.py cover those.)"""
    p = SEAdLIFParameters(beta=0.8, rho=0.85, a=5.0, b=0.0, reset=reset)
    generator = torch.Generator().manual_seed(3)
    inputs = _inputs(3, steps=25, batch=2, size=6).requires_grad_()
    state = SEAdLIFState(
        torch.rand(2, 6, generator=generator, dtype=torch.float64).requires_grad_(),
        torch.rand(2, 6, generator=generator, dtype=torch.float64).requires_grad_(),
        torch.zeros(2, 6, dtype=torch.float64),
    )
    scale = torch.linspace(0.5, 1.5, 25 * 2 * 6, dtype=torch.float64).reshape(25, 2, 6)

    def loss():
        spikes, final, membranes = neuron_sequence("se-adlif", inputs, p, None, state, return_membrane=True)
        return (membranes * scale).sum() + final.adaptation.sum(), spikes

    value, spikes = loss()
    assert 0 < spikes.sum() < spikes.numel()
    leaves = [inputs, state.adaptation, state.membrane]
    grads = torch.autograd.grad(value, leaves)
    generator = torch.Generator().manual_seed(4)
    epsilon = 1e-6
    for leaf, grad in zip(leaves, grads):
        for _ in range(6):
            index = tuple(int(torch.randint(n, (1,), generator=generator)) for n in leaf.shape)
            with torch.no_grad():
                leaf[index] += epsilon
                up, up_spikes = loss()
                leaf[index] -= 2 * epsilon
                down, down_spikes = loss()
                leaf[index] += epsilon
            assert torch.equal(up_spikes, spikes) and torch.equal(down_spikes, spikes)
            assert math.isclose(float(grad[index]), float(up - down) / (2 * epsilon), rel_tol=1e-6, abs_tol=1e-8)


def test_the_coupling_carries_gradient():
    """With a > 0 the input gradient differs from the one with the adaptation detached (what an
    ALIF-style template would compute); with a = b = 0 the adaptation stays 0 and they agree."""
    inputs = _inputs(5).requires_grad_()

    def input_grad(p, detach):
        state = None
        spikes_out = []
        with reference_core():
            state = get_neuron("se-adlif").initial_state(inputs[0])
            for x in inputs:
                if detach:
                    state = state._replace(adaptation=state.adaptation.detach())
                spikes, state = get_neuron("se-adlif").step(x, state, p)
                spikes_out.append(spikes)
        (grad,) = torch.autograd.grad(torch.stack(spikes_out).sum(), inputs)
        return grad

    coupled = SEAdLIFParameters(beta=0.8, rho=0.9, a=4.0, b=8.0)
    assert not torch.allclose(input_grad(coupled, False), input_grad(coupled, True))
    plain = SEAdLIFParameters(beta=0.8, rho=0.9, a=0.0, b=0.0)
    torch.testing.assert_close(input_grad(plain, False), input_grad(plain, True), **F64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_forward_bit_for_bit_without_recurrence(dtype, kernel):
    inputs = _inputs(6, dtype=dtype)
    p = SEAdLIFParameters(beta=0.75, rho=0.92, a=6.0, b=10.0, reset="subtract")
    spikes, final, membranes = neuron_sequence("se-adlif", inputs, p, return_membrane=True)
    with reference_core():
        ref_spikes, ref_final, ref_membranes = neuron_sequence("se-adlif", inputs, p, return_membrane=True)
    assert spikes.dtype == dtype and 0 < spikes.mean() < 0.5
    assert torch.equal(spikes, ref_spikes) and torch.equal(membranes, ref_membranes)
    assert all(torch.equal(a, b) for a, b in zip(final, ref_final))


def test_conv_layer_fast_equals_reference():
    """Convolution currents reach the neurons channels-last on the fast path: elementwise scalar
    constants make that layout irrelevant (spikes equal, weight gradients to rounding)."""
    torch.manual_seed(13)
    layer = SpikingConv2d(2, 4, 3, stride=2, padding=1, neuron="se-adlif", beta=0.8).double()
    with torch.no_grad():
        layer.synapse.weight.mul_(3.0)
    inputs = ((torch.rand(12, 3, 2, 10, 10) < 0.2) * 3).double()

    def run():
        layer.zero_grad()
        spikes = layer(inputs)
        (spikes * torch.linspace(0.5, 1.5, spikes.shape[-1], dtype=spikes.dtype)).sum().backward()
        return spikes.detach(), [p.grad.clone() for p in layer.parameters()]

    spikes, grads = run()
    with reference_core():
        ref_spikes, ref_grads = run()
    assert 0 < spikes.mean() < 0.5 and torch.equal(spikes, ref_spikes)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


def test_recurrent_layer_trains_through_the_fast_path():
    torch.manual_seed(3)
    layer = SpikingLinear(12, 16, neuron="se-adlif", recurrent=True, beta=0.7)
    with torch.no_grad():
        layer.synapse.weight.mul_(4.0)
    spikes = layer((torch.rand(40, 5, 12) < 0.3).float())
    assert spikes.sum() > 0
    spikes.sum().backward()
    assert layer.recurrent.grad.abs().sum() > 0 and layer.synapse.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("beta,rho", [(0.7, 0.9), (0.3, 0.8), (0.95, 0.98)])
def test_stability_limit_is_where_the_subthreshold_oscillation_stops_decaying(beta, rho):
    """Without spikes (threshold out of reach) an input impulse decays below the limit on a that the
    record checks and grows above it: the record refuses the latter."""
    limit = (1 + beta) * (1 + rho) / ((1 - beta) * (1 - rho))
    impulse = torch.zeros(400, 1, 1, dtype=torch.float64)
    impulse[0] = 1.0

    def peak_late(a):
        p = SEAdLIFParameters(beta=beta, rho=rho, a=a, b=0.0, threshold=1e300)
        membranes = neuron_sequence("se-adlif", impulse, p, return_membrane=True)[2]
        return membranes[-50:].abs().max().item()

    assert peak_late(0.97 * limit) < 1e-3
    with pytest.raises(ValueError, match="oscillation grow"):
        SEAdLIFParameters(beta=beta, rho=rho, a=1.03 * limit)
    p = SEAdLIFParameters(beta=beta, rho=rho, b=0.0, threshold=1e300)
    object.__setattr__(p, "a", 1.03 * limit)  # past the record's check: the dynamics themselves
    grown = neuron_sequence("se-adlif", impulse, p, return_membrane=True)[2][-50:].abs().max().item()
    assert grown > 1.0


def test_parameter_record_validates_and_is_frozen():
    with pytest.raises(ValueError, match="a and b must be >= 0"):
        SEAdLIFParameters(b=-1.0)
    with pytest.raises(ValueError, match="rho"):
        SEAdLIFParameters(rho=1.5)
    with pytest.raises(ValueError, match="reset"):
        SEAdLIFParameters(reset="none")
    with pytest.raises(ValueError, match="unknown surrogate"):
        SEAdLIFParameters(surrogate="nope")
    with pytest.raises(Exception):
        SEAdLIFParameters().a = 1.0  # frozen
    with pytest.raises(TypeError, match="takes SEAdLIFParameters"):
        neuron_sequence("se-adlif", torch.zeros(3, 1, 2), get_neuron("lif").make_parameters())


def test_audio_front_end_gives_it_the_front_ends_membrane_decay_and_fires():
    from neuromem.models.frontends import NEURON_LAYERS, AudioFrontEnd

    assert "se-adlif" in NEURON_LAYERS
    torch.manual_seed(0)
    front = AudioFrontEnd((700,), hidden=64, neuron="se-adlif")
    assert [layer.neuron.beta for layer in front.layers] == [AudioFrontEnd.membrane_decay] * 2
    inputs = (torch.rand(50, 4, 700) < 0.06).float()  # about the embedded SHD data's density
    hidden = front.layers[0](inputs)
    spikes = front.layers[1](hidden)
    assert 0.005 < hidden.mean() < 0.5 and 0.005 < spikes.mean() < 0.5
