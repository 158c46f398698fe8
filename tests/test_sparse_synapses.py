"""Sparse-input synapses (sum over active inputs only) equal torch's dense layers:
values and gradients to float rounding, for linear and convolutional synapses, in
float32 and float64, with the channels-last layout the sparse convolution writes."""

import pytest
import torch

from neuromem import cpu_tier
from neuromem.neurons import SpikingConv2d, SpikingLinear
from neuromem.neurons.functional import sparse
from neuromem.neurons.functional.lif import reference_core
from neuromem.neurons.functional.sparse import is_channels_last, sparse_input_conv2d, sparse_input_linear


def _events(shape, density, generator, dtype):
    active = torch.rand(shape, generator=generator) < density
    counts = torch.randint(1, 4, shape, generator=generator)  # binned events can count more than one
    return (active * counts).to(dtype)


def _grads(out, leaves, generator):
    weights = torch.randn(out.shape, generator=generator, dtype=out.dtype)
    return torch.autograd.grad((out * weights).sum(), leaves)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("input_grad", [False, True])
def test_sparse_linear_equals_dense(dtype, input_grad):
    generator = torch.Generator().manual_seed(1)
    inputs = _events((300, 120), 0.03, generator, dtype).requires_grad_(input_grad)
    weight = torch.randn(80, 120, generator=generator, dtype=dtype).requires_grad_()
    bias = torch.randn(80, generator=generator, dtype=dtype).requires_grad_()
    leaves = [weight, bias] + ([inputs] if input_grad else [])
    dense = torch.nn.functional.linear(inputs, weight, bias)
    fast = sparse_input_linear(inputs, weight, bias)
    assert fast.grad_fn is not None and "SparseInputLinear" in type(fast.grad_fn).__name__
    tolerance = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast, dense, **tolerance)
    for got, want in zip(_grads(fast, leaves, torch.Generator().manual_seed(2)), _grads(dense, leaves, torch.Generator().manual_seed(2))):
        torch.testing.assert_close(got, want, **tolerance)


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("density", [0.03, 0.5])  # sparse sums | dense fallback
def test_sparse_linear_flattens_frames_in_channel_height_width_order(channels_last, density):
    """Frames (rows, C, H, W) go in as they lie; values and every gradient equal flatten + linear,
    and the input gradient comes back in the frames' layout (channels-last stays channels-last)."""
    generator = torch.Generator().manual_seed(4)
    frames = _events((50, 3, 5, 7), density, generator, torch.float64)
    if channels_last:
        frames = frames.contiguous(memory_format=torch.channels_last)
    frames.requires_grad_()
    weight = torch.randn(70, 105, generator=generator, dtype=torch.float64).requires_grad_()
    bias = torch.randn(70, generator=generator, dtype=torch.float64).requires_grad_()
    leaves = [frames, weight, bias]
    want = torch.nn.functional.linear(frames.flatten(1), weight, bias)
    got = sparse_input_linear(frames, weight, bias)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    got_grads = _grads(got, leaves, torch.Generator().manual_seed(2))
    for g, w in zip(got_grads, _grads(want, leaves, torch.Generator().manual_seed(2))):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    if channels_last and density < sparse.SPARSE_DENSITY_LIMIT:
        assert is_channels_last(got_grads[0])


@pytest.mark.parametrize("density, sparse_path", [(0.01, True), (0.05, False)])
def test_narrow_outputs_use_the_sparse_sums_below_their_own_limit(density, sparse_path):
    """A readout (few outputs) sums over the active inputs only below SPARSE_NARROW_DENSITY_LIMIT."""
    generator = torch.Generator().manual_seed(5)
    inputs = (torch.rand(400, 256, generator=generator) < density).float()
    weight = torch.randn(20, 256, generator=generator, requires_grad=True)
    out = sparse_input_linear(inputs, weight, None)
    assert ("SparseInputLinear" in type(out.grad_fn).__name__) == sparse_path
    torch.testing.assert_close(out, inputs @ weight.t(), rtol=1e-5, atol=1e-5)
    assert sparse.SPARSE_NARROW_DENSITY_LIMIT < 0.05 < sparse.SPARSE_DENSITY_LIMIT


def test_sparse_linear_falls_back_to_dense_above_the_density_limit():
    inputs = (torch.rand(50, 100) < 0.5).float()
    out = sparse_input_linear(inputs, torch.randn(80, 100), None)
    assert out.grad_fn is None or "SparseInputLinear" not in type(out.grad_fn).__name__
    assert sparse.SPARSE_DENSITY_LIMIT < 0.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "geometry", [(2, 16, 5, 2, 2, 34), (16, 32, 3, 2, 1, 17), (3, 4, 3, 1, 0, 9), (2, 5, 4, 3, 1, 13)]
)
def test_sparse_conv_equals_dense(dtype, geometry):
    channels_in, channels_out, kernel, stride, padding, size = geometry
    generator = torch.Generator().manual_seed(3)
    inputs = _events((12, channels_in, size, size), 0.08, generator, dtype).requires_grad_()
    weight = torch.randn(channels_out, channels_in, kernel, kernel, generator=generator, dtype=dtype).requires_grad_()
    bias = torch.randn(channels_out, generator=generator, dtype=dtype).requires_grad_()
    dense = torch.nn.functional.conv2d(inputs, weight, bias, stride, padding)
    fast = sparse_input_conv2d(inputs, weight, bias, stride, padding)
    assert is_channels_last(fast)  # the sparse kernel ran
    tolerance = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast, dense, **tolerance)
    leaves = [inputs, weight, bias]
    for got, want in zip(_grads(fast, leaves, torch.Generator().manual_seed(4)), _grads(dense, leaves, torch.Generator().manual_seed(4))):
        torch.testing.assert_close(got, want, **tolerance)


@pytest.mark.parametrize("kernel, stride, padding", [(3, 2, 1), (1, 2, 0)])  # every input covered | every other not
def test_sparse_conv_input_gradient_equals_dense(kernel, stride, padding):
    """dL/dx of the sparse convolution (torch's transposed convolution, channels-last) equals the dense one's."""
    generator = torch.Generator().manual_seed(6)
    inputs = _events((7, 3, 10, 9), 0.08, generator, torch.float64).requires_grad_()
    weight = torch.randn(4, 3, kernel, kernel, generator=generator, dtype=torch.float64).requires_grad_()
    fast = sparse_input_conv2d(inputs, weight, None, stride, padding)
    dense = torch.nn.functional.conv2d(inputs, weight, None, stride, padding)
    assert is_channels_last(fast) and fast.shape[2:] == (5, 5)
    grad_out = torch.randn(dense.shape, generator=generator, dtype=torch.float64)
    (got,) = torch.autograd.grad(fast, inputs, grad_out)
    (want,) = torch.autograd.grad(dense, inputs, grad_out)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_sparse_conv_reads_channels_last_input():
    generator = torch.Generator().manual_seed(5)
    inputs = _events((6, 16, 17, 17), 0.05, generator, torch.float64)
    weight = torch.randn(32, 16, 3, 3, generator=generator, dtype=torch.float64)
    channels_last = inputs.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(
        sparse_input_conv2d(channels_last, weight, None, 2, 1), torch.nn.functional.conv2d(inputs, weight, None, 2, 1)
    )


def test_spiking_conv_stack_fast_equals_reference():
    """Two sparse convolutions (channels-last between them) and a dense layer that flattens their frames."""
    torch.manual_seed(15)
    layers = torch.nn.ModuleList(
        [SpikingConv2d(2, 8, 5, stride=2, padding=2, beta=0.9), SpikingConv2d(8, 8, 3, stride=2, padding=1, beta=0.9),
         SpikingLinear(8 * 5 * 5, 10, beta=0.9)]
    ).double()
    with torch.no_grad():
        for layer in layers:
            layer.synapse.weight.mul_(3.0)
    inputs = _events((15, 4, 2, 18, 18), 0.06, torch.Generator().manual_seed(7), torch.float64)

    def run():
        layers.zero_grad()
        hidden = layers[1](layers[0](inputs))
        spikes = layers[2](hidden)
        (spikes * torch.linspace(0.5, 1.5, 10, dtype=torch.float64)).sum().backward()
        return hidden.detach(), spikes.detach(), {name: p.grad.clone() for name, p in layers.named_parameters()}

    fast_hidden, fast_spikes, fast_grads = run()
    with reference_core():
        ref_hidden, ref_spikes, ref_grads = run()
    assert fast_hidden.sum() > 0 and fast_spikes.sum() > 0
    assert torch.equal(fast_hidden, ref_hidden) and torch.equal(fast_spikes, ref_spikes)
    for name in ref_grads:
        torch.testing.assert_close(fast_grads[name], ref_grads[name], rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("density", [0.005, 0.045])  # mostly empty blocks of 8 | many non-empty ones
def test_sparse_linear_fills_every_density_regime(dtype, density):
    generator = torch.Generator().manual_seed(8)
    inputs = _events((400, 203), density, generator, dtype)  # 203: not a multiple of the 8-wide blocks
    inputs[3, 200:] = -0.0  # negative zeros are zeros
    weight = torch.randn(70, 203, generator=generator, dtype=dtype).requires_grad_()
    fast = sparse_input_linear(inputs, weight)
    assert "SparseInputLinear" in type(fast.grad_fn).__name__
    dense = torch.nn.functional.linear(inputs, weight)
    tolerance = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast, dense, **tolerance)
    (fast_grad,) = torch.autograd.grad(fast.sum(), weight)
    (dense_grad,) = torch.autograd.grad(dense.sum(), weight)
    torch.testing.assert_close(fast_grad, dense_grad, **tolerance)


def test_listed_spikes_are_taken_only_while_the_tensor_is_unchanged(monkeypatch):
    """A fused conv + LIF lists the spikes it makes; the next layer takes that list instead of
    scanning the tensor (same result as a scan), and scans again once the tensor was modified."""
    if sparse._numba is None:
        pytest.skip("numba is not installed")
    torch.manual_seed(21)
    first = SpikingConv2d(2, 8, 3, stride=2, padding=1, beta=0.9).double()
    with torch.no_grad():
        first.synapse.weight.mul_(2.0)
    inputs = (torch.rand(6, 3, 2, 12, 12) < 0.1).double()
    spikes = first(inputs)
    frames = spikes.reshape(18, *spikes.shape[2:])
    assert is_channels_last(frames) and 0 < spikes.sum() < 0.1 * spikes.numel()
    weight = torch.randn(4, 8, 3, 3, dtype=torch.float64)

    recalled = []
    original = sparse._recalled_nonzeros
    monkeypatch.setattr(sparse, "_recalled_nonzeros", lambda dense: recalled.append(original(dense)) or recalled[-1])
    listed = sparse_input_conv2d(frames, weight, None, 2, 1)
    # the list was taken; the portable CPU tier keeps no list: it scans
    assert (recalled[-1] is not None) == cpu_tier.TUNED
    scanned = sparse_input_conv2d(frames.detach().clone(memory_format=torch.channels_last), weight, None, 2, 1)
    assert recalled[-1] is None  # another tensor: scanned
    assert torch.equal(listed, scanned)

    with torch.no_grad():
        frames[0, 0, 0, 0] = 1.0 - frames[0, 0, 0, 0]  # in place: the list no longer holds
    modified = sparse_input_conv2d(frames, weight, None, 2, 1)
    assert recalled[-1] is None
    torch.testing.assert_close(modified, torch.nn.functional.conv2d(frames, weight, None, 2, 1))


def test_empty_batches_take_the_dense_ops():
    """No frames, no rows: the sparse kernels step aside (they index per frame) and torch's ops answer."""
    weight = torch.randn(16, 2, 5, 5, requires_grad=True)
    out = sparse_input_conv2d(torch.zeros(0, 2, 34, 34), weight, None, 2, 2)
    assert out.shape == (0, 16, 17, 17)
    out.sum().backward()
    assert torch.count_nonzero(weight.grad) == 0
    assert sparse_input_linear(torch.zeros(0, 700), torch.randn(256, 700)).shape == (0, 256)
