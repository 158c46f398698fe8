"""The fast spiking core (one autograd node per sequence, numba kernels, hand-written
backward through time) equals the step-by-step reference path for every registered
neuron model and surrogate: spikes exactly, membranes bit for bit without a recurrent
weight (to float rounding with one: the recurrent sum runs over the spiking inputs
only), gradients to float rounding. The model and surrogate lists come from the
registries, so a newly registered one is checked without editing this file."""

import pytest
import torch

from neuromem.neurons import SpikingConv2d, SpikingLinear
from neuromem.neurons.functional import conv_lif, neuron
from neuromem.neurons.functional.lif import LIFParameters, leaky_integrator_sequence, lif_sequence
from neuromem.neurons.functional.neuron import neuron_sequence, reference_core
from neuromem.neurons.models import get_neuron, neuron_names
from neuromem.neurons.surrogates import surrogate_names

# the template models (numba kernels, torch loop) and those outside it with a fast path of their own (SE-adLIF);
# Loihi's fixed-point fast path takes integer activations and has its own test, tests/test_loihi_kernels.py
FAST_MODELS = [name for name in neuron_names() if get_neuron(name).has_fast_path and name != "loihi"]
FUSED_CONV_MODELS = [name for name in neuron_names() if get_neuron(name).fused_conv]
DEFAULT_SURROGATE = "fast_sigmoid"
F64 = dict(rtol=1e-10, atol=1e-12)


def _parameters(name, **fields):
    # drive enough that an adaptive threshold still lets the neurons fire and fall silent
    return get_neuron(name).make_parameters(beta=0.85, **fields)


def _run(name, inputs, params, weight, state, loss_kind):
    """Spikes, membranes and a loss: on the spikes only (the common kernels) or on every output
    (spikes, membranes, the final state: the general kernels)."""
    spikes, final, membranes = neuron_sequence(name, inputs, params, weight, state, return_membrane=True)
    loss = (spikes * torch.linspace(0.5, 1.5, spikes.shape[-1], dtype=spikes.dtype)).sum()
    if loss_kind == "all":
        loss = loss + 0.1 * (membranes**2).sum() + 0.2 * final.membrane.sum()
        model = get_neuron(name)
        if _aux_takes_gradient(model):
            loss = loss + 0.3 * getattr(final, model.aux_field).sum()
    return spikes, membranes, final, loss


def _aux_takes_gradient(model):
    """Whether gradients flow through the model's aux trace: not through an adaptive threshold's
    (template models), through every other one (CUBA's current, SE-adLIF's adaptation current)."""
    return model.aux_field is not None and (model.dynamics is None or not model.dynamics.adaptive)


def _leaves(seed, name, recurrent, with_state, dtype, size=24, steps=40, batch=6):
    generator = torch.Generator().manual_seed(seed)
    inputs = (torch.randn(steps, batch, size, generator=generator, dtype=dtype) * 0.7 + 0.35).requires_grad_()
    weight = None
    if recurrent:
        weight = (torch.randn(size, size, generator=generator, dtype=dtype) * 0.3).requires_grad_()
    state = None
    if with_state:
        model = get_neuron(name)
        fields = {
            "membrane": torch.rand(batch, size, generator=generator, dtype=dtype).requires_grad_(),
            "spikes": (torch.rand(batch, size, generator=generator, dtype=dtype) < 0.3).to(dtype).requires_grad_(),
        }
        if model.aux_field is not None:
            aux = torch.rand(batch, size, generator=generator, dtype=dtype)
            fields[model.aux_field] = aux.requires_grad_() if _aux_takes_gradient(model) else aux
        state = model.state(**fields)
    return inputs, weight, state


def _grads(loss, inputs, weight, state):
    leaves = [inputs] + ([weight] if weight is not None else []) + (
        [t for t in state if t.requires_grad] if state is not None else []
    )
    return torch.autograd.grad(loss, leaves, allow_unused=True)


@pytest.fixture(params=["numba", "torch-loop"])
def kernel(request, monkeypatch):
    """Both fast implementations: the numba kernels (CPU) and the torch loop (GPU, or no numba)."""
    if request.param == "torch-loop":
        monkeypatch.setattr(neuron, "_numba", None)
    elif neuron._numba is None:
        pytest.skip("numba is not installed")
    return request.param


def _assert_fast_equals_reference(name, params, recurrent, with_state, dtype, kernel, loss_kind, tolerance, seed=7):
    inputs, weight, state = _leaves(seed, name, recurrent, with_state, dtype)
    fast_spikes, fast_membranes, fast_final, fast_loss = _run(name, inputs, params, weight, state, loss_kind)
    fast_grads = _grads(fast_loss, inputs, weight, state)
    with reference_core():
        ref_spikes, ref_membranes, ref_final, ref_loss = _run(name, inputs, params, weight, state, loss_kind)
    ref_grads = _grads(ref_loss, inputs, weight, state)
    assert 0 < fast_spikes.mean() < 0.9  # both spiking and silence are exercised
    assert torch.equal(fast_spikes, ref_spikes)
    if recurrent and kernel == "numba":  # the spike-sparse recurrent sum adds in another order
        torch.testing.assert_close(fast_membranes, ref_membranes, **tolerance)
    else:  # the same model functions, the same float operations in the same order: bit for bit
        assert torch.equal(fast_membranes, ref_membranes)
        for fast, ref in zip(fast_final, ref_final):
            assert torch.equal(fast.detach(), ref.detach())
    assert len(fast_grads) == len(ref_grads)
    for fast, ref in zip(fast_grads, ref_grads):
        if ref is None:  # e.g. spikes0 without a recurrent weight: only the detached reset sees it
            assert fast is None or torch.count_nonzero(fast) == 0
            continue
        assert fast is not None
        torch.testing.assert_close(fast, ref, **tolerance)


@pytest.mark.parametrize("name", FAST_MODELS)
@pytest.mark.parametrize("surrogate", surrogate_names())
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("recurrent", [False, True])
def test_every_model_and_surrogate_fast_equals_reference(name, surrogate, reset, recurrent, kernel):
    """Every registered model x surrogate x reset x recurrence, both losses (the spike-only
    kernels and the general ones), float64."""
    params = _parameters(name, reset=reset, surrogate=surrogate, surrogate_slope=2.0)
    for loss_kind in ("spikes", "all"):
        _assert_fast_equals_reference(name, params, recurrent, False, torch.float64, kernel, loss_kind, F64)


@pytest.mark.parametrize("name", FAST_MODELS)
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("recurrent", [False, True])
def test_fast_sequence_from_a_given_state_equals_reference(name, reset, recurrent, kernel):
    """From a given initial state (its gradients too), float32 and float64, the default surrogate."""
    params = _parameters(name, reset=reset, surrogate=DEFAULT_SURROGATE)
    for dtype, tolerance in ((torch.float32, dict(rtol=1e-3, atol=1e-4)), (torch.float64, F64)):
        _assert_fast_equals_reference(name, params, recurrent, True, dtype, kernel, "all", tolerance, seed=8)


def test_alif_without_adaptation_is_lif():
    """beta_a = 0: the adaptive threshold stays at b0, so ALIF's spikes and gradients are LIF's."""
    inputs = (torch.randn(30, 4, 16, dtype=torch.float64) + 0.4).requires_grad_()
    lif = _parameters("lif", surrogate="atan")
    alif = _parameters("alif", surrogate="atan", beta_a=0.0)
    lif_spikes = neuron_sequence("lif", inputs, lif)[0]
    alif_spikes = neuron_sequence("alif", inputs, alif)[0]
    assert torch.equal(lif_spikes, alif_spikes)
    (lif_grad,) = torch.autograd.grad(lif_spikes.sum(), inputs)
    (alif_grad,) = torch.autograd.grad(alif_spikes.sum(), inputs)
    torch.testing.assert_close(lif_grad, alif_grad, **F64)
    adapting = neuron_sequence("alif", inputs, _parameters("alif", surrogate="atan", beta_a=1.8))[0]
    assert adapting.sum() < lif_spikes.sum()  # a raised threshold fires less


def test_model_outside_the_template_runs_its_own_fast_path():
    """Loihi's fixed-point neuron has no template kernels: the fast path runs its own, never another model's."""
    from neuromem.neurons.functional.loihi import LoihiParameters, loihi_reference_sequence as loihi_sequence

    model = get_neuron("loihi")
    assert not model.has_kernels and not model.fused_conv and model.has_fast_path
    activations = torch.randint(-40, 80, (25, 3, 10)).double()
    spikes, state = neuron_sequence("loihi", activations, LoihiParameters(vth=64))
    want, voltages, _ = loihi_sequence(activations, LoihiParameters(vth=64))
    assert spikes.sum() > 0 and torch.equal(spikes, want) and torch.equal(state.voltage, voltages[-1])


def test_a_model_refuses_another_models_parameters():
    with pytest.raises(TypeError, match="takes CUBAParameters"):
        neuron_sequence("cuba", torch.zeros(3, 1, 2), LIFParameters())


def test_unknown_surrogate_and_model_are_refused_naming_the_registered_ones():
    with pytest.raises(ValueError, match="unknown surrogate 'nope'; valid: " + ", ".join(surrogate_names())):
        LIFParameters(surrogate="nope")
    with pytest.raises(ValueError, match="unknown neuron model 'nope'; valid: " + ", ".join(neuron_names())):
        get_neuron("nope")


def test_fused_conv_refuses_a_model_without_its_kernel():
    layer = SpikingConv2d(2, 4, 3, neuron="cuba")
    assert layer._fused((torch.rand(3, 2, 2, 8, 8) < 0.1).float()) is None  # the layer runs unfused
    with pytest.raises(ValueError, match="no fused convolution kernel; models with one: " + ", ".join(FUSED_CONV_MODELS)):
        conv_lif.conv_lif_sequence(
            torch.zeros(3, 2, 2, 8, 8), layer.synapse.weight, None, 1, 0, get_neuron("cuba"), layer.neuron
        )


def test_leaky_integrator_fast_equals_reference(kernel, monkeypatch):
    from neuromem.neurons.functional import leaky

    if kernel == "torch-loop":
        monkeypatch.setattr(leaky, "compiled_kernels_apply", lambda *tensors: False)
    inputs = torch.randn(50, 5, 7).requires_grad_()
    weights = torch.randn(50, 5, 7)
    fast = leaky_integrator_sequence(inputs, 0.93)
    (fast_grad,) = torch.autograd.grad((fast * weights).sum(), inputs)
    with reference_core():
        ref = leaky_integrator_sequence(inputs, 0.93)
    (ref_grad,) = torch.autograd.grad((ref * weights).sum(), inputs)
    assert torch.equal(fast, ref)
    torch.testing.assert_close(fast_grad, ref_grad)


def _layer_grads(layer, inputs):
    layer.zero_grad()
    spikes = layer(inputs)
    (spikes * torch.linspace(0.5, 1.5, spikes.shape[-1])).sum().backward()
    return spikes.detach(), {name: p.grad.clone() for name, p in layer.named_parameters()}


def _assert_layer_matches_reference(layer, inputs, **tolerance):
    """Spikes exactly and parameter gradients to `tolerance`, fast core vs reference core.
    Returns the fast spikes for further checks."""
    fast_spikes, fast_grads = _layer_grads(layer, inputs)
    with reference_core():
        ref_spikes, ref_grads = _layer_grads(layer, inputs)
    assert torch.equal(fast_spikes, ref_spikes)
    for name in ref_grads:
        torch.testing.assert_close(fast_grads[name], ref_grads[name], **tolerance)
    return fast_spikes


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("neuron", FAST_MODELS)
def test_spiking_linear_fast_equals_reference_on_sparse_input(recurrent, neuron):
    torch.manual_seed(11)
    layer = SpikingLinear(300, 40, neuron=neuron, recurrent=recurrent, beta=0.9).double()
    with torch.no_grad():
        layer.synapse.weight.mul_(4.0)  # enough drive that the layer spikes on 2%-dense input
    inputs = (torch.rand(50, 8, 300) < 0.02).double()
    # the sparse projection sums in another order: values agree to rounding, spikes exactly here
    fast_spikes = _assert_layer_matches_reference(layer, inputs, rtol=1e-9, atol=1e-11)
    assert fast_spikes.sum() > 0


def test_spiking_linear_input_gradient_on_sparse_input():
    torch.manual_seed(12)
    layer = SpikingLinear(200, 30, beta=0.9).double()
    with torch.no_grad():
        layer.synapse.weight.mul_(4.0)
    inputs = (torch.rand(30, 4, 200) < 0.03).double().requires_grad_()
    (fast,) = torch.autograd.grad(layer(inputs).sum(), inputs)
    with reference_core():
        (ref,) = torch.autograd.grad(layer(inputs).sum(), inputs)
    torch.testing.assert_close(fast, ref)


def test_spiking_conv_fast_equals_reference():
    torch.manual_seed(13)
    layer = SpikingConv2d(2, 4, 3, stride=2, padding=1, beta=0.9)
    inputs = (torch.rand(12, 3, 2, 10, 10) < 0.2).float() * 3
    fast_spikes = _assert_layer_matches_reference(layer, inputs, rtol=1e-4, atol=1e-5)
    assert fast_spikes.sum() > 0


@pytest.mark.parametrize("name", FUSED_CONV_MODELS)
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("surrogate", surrogate_names())
@pytest.mark.parametrize("input_grad", [False, True])  # a first layer on data | a later layer
def test_fused_conv_equals_unfused(name, reset, surrogate, input_grad):
    """A conv layer runs synapse and neurons fused per frame: spikes and the loss bit for bit as
    unfused (a hook on the synapse, e.g. operation counting, turns fusion off), weight, bias and
    input gradients to float rounding (summed in another order)."""
    if neuron._numba is None:
        pytest.skip("numba is not installed")
    torch.manual_seed(15)
    layer = SpikingConv2d(2, 6, 3, stride=2, padding=1, neuron=name, beta=0.85, reset=reset, surrogate=surrogate).double()
    with torch.no_grad():
        layer.synapse.weight.mul_(3.0)
    inputs = ((torch.rand(9, 3, 2, 12, 11) < 0.06) * torch.randint(1, 3, (9, 3, 2, 12, 11))).double()
    inputs.requires_grad_(input_grad)
    scale = torch.linspace(0.5, 1.5, 6 * 6 * 6, dtype=torch.float64).reshape(6, 6, 6)
    leaves = [layer.synapse.weight, layer.synapse.bias] + ([inputs] if input_grad else [])

    def run():
        spikes = layer(inputs)
        loss = (spikes * scale).sum()
        return spikes, loss, torch.autograd.grad(loss, leaves)

    def fused(spikes):  # the node under the layout permute
        return "ConvLIF" in type(spikes.grad_fn.next_functions[0][0]).__name__

    fused_spikes, fused_loss, fused_grads = run()
    assert fused(fused_spikes)
    handle = layer.synapse.register_forward_hook(lambda *args: None)
    try:
        spikes, loss, grads = run()
    finally:
        handle.remove()
    assert not fused(spikes)
    assert 0 < spikes.sum() < spikes.numel()
    assert torch.equal(fused_spikes, spikes) and torch.equal(fused_loss, loss)
    assert len(fused_grads) == len(leaves)
    for got, want in zip(fused_grads, grads):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    if input_grad:
        assert fused_grads[-1].abs().sum() > 0


def test_spiking_conv_chunked_projection_equals_reference(monkeypatch):
    torch.manual_seed(14)
    layer = SpikingConv2d(2, 4, 3, stride=2, padding=1, beta=0.9)
    monkeypatch.setattr(SpikingConv2d, "conv_chunk_frames", 7)  # 36 frames -> 6 chunks
    inputs = (torch.rand(12, 3, 2, 10, 10) < 0.2).float() * 3
    _assert_layer_matches_reference(layer, inputs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("density_switch", [0.0, 1.0])  # dense matmul / spike-sparse sum
@pytest.mark.parametrize("name", FAST_MODELS)
def test_recurrent_weight_gradient_both_paths(name, density_switch, monkeypatch):
    if neuron._numba is None:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(neuron, "_SPARSE_OUTER_DENSITY", density_switch)
    params = _parameters(name)
    inputs, weight, state = _leaves(8, name, True, True, torch.float64)
    fast_grads = _grads(_run(name, inputs, params, weight, state, "all")[3], inputs, weight, state)
    with reference_core():
        ref_grads = _grads(_run(name, inputs, params, weight, state, "all")[3], inputs, weight, state)
    torch.testing.assert_close(fast_grads[1], ref_grads[1], **F64)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("density_switch", [0.0, 1.0])  # dense dL/dW after the loop | summed in the step kernel
def test_recurrent_lif_spike_loss_equals_reference(reset, density_switch, monkeypatch):
    """Recurrent LIF with only dL/ds (its own step kernel): every gradient equals the reference's."""
    if neuron._numba is None:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(neuron, "_SPARSE_OUTER_DENSITY", density_switch)
    params = LIFParameters(beta=0.85, reset=reset, surrogate="atan")
    inputs, weight, state = _leaves(9, "lif", True, True, torch.float64)
    scale = torch.linspace(0.5, 1.5, inputs.shape[-1], dtype=torch.float64)

    def grads():
        spikes, _ = lif_sequence(inputs, params, weight, state)
        return _grads((spikes * scale).sum(), inputs, weight, state)

    fast = grads()
    with reference_core():
        ref = grads()
    for got, want in zip(fast, ref):
        if want is None:
            assert got is None or torch.count_nonzero(got) == 0
            continue
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
