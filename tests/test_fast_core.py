"""The fast spiking core (one autograd node per sequence, numba kernels, hand-written
backward through time) equals the step-by-step reference path: spikes exactly,
membranes bit for bit without a recurrent weight (to float rounding with one: the
recurrent sum runs over the spiking inputs only), gradients to float rounding."""

import pytest
import torch

from neuromem.neurons import SpikingConv2d, SpikingLinear
from neuromem.neurons.functional import blas, lif
from neuromem.neurons.functional.lif import (
    CUBAParameters,
    CUBAState,
    LIFParameters,
    LIFState,
    cuba_sequence,
    leaky_integrator_sequence,
    lif_sequence,
    reference_core,
)


def _run(kind, inputs, params, weight, state):
    """Spikes, membranes (or final current for CUBA) and a loss touching every output."""
    if kind == "lif":
        spikes, final, membranes = lif_sequence(inputs, params, weight, state, return_membrane=True)
        loss = (spikes * torch.linspace(0.5, 1.5, spikes.shape[-1])).sum() + 0.1 * (membranes**2).sum()
        loss = loss + final.membrane.sum()
        return spikes, membranes, loss
    spikes, final = cuba_sequence(inputs, params, weight, state)
    loss = (spikes * torch.linspace(0.5, 1.5, spikes.shape[-1])).sum() + 0.3 * final.current.sum()
    loss = loss + 0.2 * final.membrane.sum()
    return spikes, final.current, loss


def _leaves(seed, kind, recurrent, with_state, dtype, size=24):
    generator = torch.Generator().manual_seed(seed)
    inputs = (torch.randn(40, 6, size, generator=generator, dtype=dtype) * 0.7 + 0.35).requires_grad_()
    weight = None
    if recurrent:
        weight = (torch.randn(size, size, generator=generator, dtype=dtype) * 0.3).requires_grad_()
    state = None
    if with_state:
        v0 = (torch.rand(6, size, generator=generator, dtype=dtype)).requires_grad_()
        s0 = (torch.rand(6, size, generator=generator, dtype=dtype) < 0.3).to(dtype).requires_grad_()
        if kind == "lif":
            state = LIFState(v0, s0)
        else:
            i0 = torch.randn(6, size, generator=generator, dtype=dtype).requires_grad_()
            state = CUBAState(i0, v0, s0)
    return inputs, weight, state


def _grads(loss, inputs, weight, state):
    leaves = [inputs] + ([weight] if weight is not None else []) + (list(state) if state is not None else [])
    return torch.autograd.grad(loss, leaves, allow_unused=True)


@pytest.fixture(params=["numba", "torch-loop"])
def kernel(request, monkeypatch):
    """Both fast implementations: the numba kernels (CPU) and the torch loop (GPU, or no numba)."""
    if request.param == "torch-loop":
        monkeypatch.setattr(lif, "_numba", None)
    elif lif._numba is None:
        pytest.skip("numba is not installed")
    return request.param


@pytest.mark.parametrize("kind", ["lif", "cuba"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
def test_fast_sequence_equals_reference(kind, reset, recurrent, with_state, kernel):
    params = (LIFParameters if kind == "lif" else CUBAParameters)(beta=0.85, reset=reset)
    for dtype, tolerance in ((torch.float32, dict(rtol=1e-3, atol=1e-4)), (torch.float64, dict(rtol=1e-10, atol=1e-12))):
        inputs, weight, state = _leaves(7, kind, recurrent, with_state, dtype)
        fast_spikes, fast_other, fast_loss = _run(kind, inputs, params, weight, state)
        fast_grads = _grads(fast_loss, inputs, weight, state)
        with reference_core():
            ref_spikes, ref_other, ref_loss = _run(kind, inputs, params, weight, state)
        ref_grads = _grads(ref_loss, inputs, weight, state)
        assert 0 < fast_spikes.mean() < 0.9  # both spiking and silence are exercised
        assert torch.equal(fast_spikes, ref_spikes)
        if recurrent and kernel == "numba":  # the spike-sparse recurrent sum adds in another order
            torch.testing.assert_close(fast_other, ref_other, **tolerance)
        else:  # same float operations in the same order: bit for bit
            assert torch.equal(fast_other, ref_other)
        for fast, ref in zip(fast_grads, ref_grads):
            if ref is None:  # e.g. spikes0 without a recurrent weight: only the detached reset sees it
                assert fast is None or torch.count_nonzero(fast) == 0
                continue
            torch.testing.assert_close(fast, ref, **tolerance)


@pytest.mark.parametrize("surrogate", ["atan", "fast_sigmoid"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_fast_path_respects_surrogate(surrogate, reset, kernel):
    """Only dL/ds given (the common case, its own kernel): gradients equal the reference's."""
    params = LIFParameters(beta=0.9, surrogate=surrogate, surrogate_slope=5.0, reset=reset)
    inputs = (torch.randn(30, 4, 16, dtype=torch.float64) + 0.4).requires_grad_()
    (fast,) = torch.autograd.grad(lif_sequence(inputs, params)[0].sum(), inputs)
    with reference_core():
        (ref,) = torch.autograd.grad(lif_sequence(inputs, params)[0].sum(), inputs)
    torch.testing.assert_close(fast, ref)


def test_leaky_integrator_fast_equals_reference(kernel):
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
@pytest.mark.parametrize("neuron", ["lif", "cuba"])
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


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("surrogate", ["atan", "fast_sigmoid"])
@pytest.mark.parametrize("input_grad", [False, True])  # a first layer on data | a later layer
def test_fused_conv_lif_equals_unfused(reset, surrogate, input_grad):
    """A conv layer runs synapse and neurons fused per frame: spikes and the loss bit for bit as
    unfused (a hook on the synapse, e.g. operation counting, turns fusion off), weight, bias and
    input gradients to float rounding (summed in another order)."""
    if lif._numba is None:
        pytest.skip("numba is not installed")
    torch.manual_seed(15)
    layer = SpikingConv2d(2, 6, 3, stride=2, padding=1, beta=0.85, reset=reset, surrogate=surrogate).double()
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
@pytest.mark.parametrize("kind", ["lif", "cuba"])
def test_recurrent_weight_gradient_both_paths(kind, density_switch, monkeypatch):
    if lif._numba is None:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(lif, "_SPARSE_OUTER_DENSITY", density_switch)
    params = (LIFParameters if kind == "lif" else CUBAParameters)(beta=0.85)
    inputs, weight, state = _leaves(8, kind, True, True, torch.float64)
    fast_grads = _grads(_run(kind, inputs, params, weight, state)[2], inputs, weight, state)
    with reference_core():
        ref_grads = _grads(_run(kind, inputs, params, weight, state)[2], inputs, weight, state)
    torch.testing.assert_close(fast_grads[1], ref_grads[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("surrogate", ["atan", "fast_sigmoid"])
@pytest.mark.parametrize("density_switch", [0.0, 1.0])  # dense dL/dW after the loop | summed in the step kernel
@pytest.mark.parametrize("loop", ["numba+blas", "python+torch.mm"])  # torch's gemm found | not found
def test_recurrent_lif_spike_loss_equals_reference(reset, surrogate, density_switch, loop, monkeypatch):
    """Recurrent LIF with only dL/ds (its own step kernel): every gradient equals the reference's."""
    if lif._numba is None:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(lif, "_SPARSE_OUTER_DENSITY", density_switch)
    if loop == "python+torch.mm":
        monkeypatch.setattr(blas, "gemm_for", lambda dtype: None)
    elif blas.gemm_for(torch.float64) is None:
        pytest.skip("torch's CPU library exports no dgemm_")
    params = LIFParameters(beta=0.85, reset=reset, surrogate=surrogate)
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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blas_product_from_numba_equals_torch_mm(dtype):
    """The gemm torch's library exports, called from a numba kernel, gives torch.mm's product."""
    gemm = blas.gemm_for(dtype)
    if lif._numba is None or gemm is None:
        pytest.skip("numba or torch's exported gemm not available")
    generator = torch.Generator().manual_seed(3)
    a = torch.randn(7, 5, generator=generator, dtype=dtype)
    b = torch.randn(5, 11, generator=generator, dtype=dtype)
    out = torch.empty(7, 11, dtype=dtype)
    blas.row_major_product(gemm, a.numpy(), b.numpy(), out.numpy(), *blas.row_major_product_arguments(7, 5, 11, dtype))
    torch.testing.assert_close(out, a @ b, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-6)
