"""SE-adLIF on the fused GPU path: Triton kernels generated from the model file's own step functions.

SE-adLIF is outside the template `neuromem.neurons.fused_gpu` writes its kernels around (its adaptation is updated
after the spike, from the new membrane and spike, and carries gradient into the membrane and back), so this module
brings the two kernels' bodies, written once in the order of its numba kernels (`functional/se_adlif.py`), and the
generator copies into them the model file's `charge`, `adapt` and the backward pieces `adaptation_adjoint`,
`membrane_adjoint` (and what they call: `reset_membrane`, `through_reset`) and the surrogate's derivative, as it
does a template model's pieces. The registry entry names this module (`gpu_module`):

- `forward`: steps t_low..t_high-1 of a block of neurons in one launch: charge, spike, adapt (the reference step);
- `backward`: steps t_high down to t_low, the adjoints of `functional/se_adlif.py`'s backward through time (spikes
  recomputed from the kept membranes, gw_t read from step t + 1 except at the last step).

`_SEAdLIFSequence` (functional/se_adlif.py) runs them on float32 CUDA tensors (CPU ones under Triton's
interpreter), without a recurrent weight each direction in one launch, with one a launch per step with the
recurrent product (cuBLAS) between; the rest of its backward (initial state, dL/dW) is shared with its other paths.
"""

from __future__ import annotations

import torch

from neuromem.neurons import fused_gpu

_KERNELS = '''
@triton.jit
def forward(x_ptr, fb_ptr, w_ptr, m_ptr, s_ptr, m_out_ptr, s_out_ptr, n, t_low, t_high, {c_args},
            ZERO_RESET: tl.constexpr, FED: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    c = {c_tuple}
    w = tl.load(w_ptr + offsets, mask=mask, other=0.0)
    m = tl.load(m_ptr + offsets, mask=mask, other=0.0)
    s = tl.load(s_ptr + offsets, mask=mask, other=0.0)
    for t in range(t_low, t_high):
        drive = tl.load(x_ptr + t * n + offsets, mask=mask, other=0.0)
        if FED:
            drive = drive + tl.load(fb_ptr + offsets, mask=mask, other=0.0)
        v = charge(drive, m, s, w, c, ZERO_RESET)
        spike = tl.where(v > c[5], 1.0, 0.0)
        w = adapt(w, v, spike, spike, c, ZERO_RESET)
        m = v
        s = spike
        tl.store(m_out_ptr + t * n + offsets, v, mask=mask)
        tl.store(s_out_ptr + t * n + offsets, spike, mask=mask)
    tl.store(w_ptr + offsets, w, mask=mask)
    tl.store(m_ptr + offsets, m, mask=mask)
    tl.store(s_ptr + offsets, s, mask=mask)


@triton.jit
def backward(v_seq_ptr, gs_ptr, gm_ptr, fb_ptr, gd_ptr, grad_m_ptr, grad_w_ptr, n, t_low, t_high, steps, {c_args},
             {sc_args}, ZERO_RESET: tl.constexpr, HAS_GS: tl.constexpr, HAS_GM: tl.constexpr, FED: tl.constexpr,
             BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    c = {c_tuple}
    sc = {sc_tuple}
    grad_m = tl.load(grad_m_ptr + offsets, mask=mask, other=0.0)
    grad_w = tl.load(grad_w_ptr + offsets, mask=mask, other=0.0)
    for i in range(t_high - t_low + 1):
        t = t_high - i
        v = tl.load(v_seq_ptr + t * n + offsets, mask=mask, other=0.0)
        spike = tl.where(v > c[5], 1.0, 0.0)
        h = surrogate_grad(v - c[5], sc)
        g_spike = step_gradient(gs_ptr, t, n, offsets, mask, HAS_GS, BLOCK)
        if FED:
            g_spike = g_spike + tl.load(fb_ptr + offsets, mask=mask, other=0.0)
        g_membrane = step_gradient(gm_ptr, t, n, offsets, mask, HAS_GM, BLOCK)
        gw = tl.where(t == steps - 1, grad_w, adaptation_adjoint(grad_w, grad_m, c))
        gm = membrane_adjoint(h, spike, g_spike, g_membrane, grad_m, gw, c, ZERO_RESET)
        grad_w = gw
        grad_m = gm
        tl.store(gd_ptr + t * n + offsets, gm, mask=mask)
    tl.store(grad_m_ptr + offsets, grad_m, mask=mask)
    tl.store(grad_w_ptr + offsets, grad_w, mask=mask)
'''


def kernel_form(model) -> fused_gpu.KernelForm:
    """The model file's step functions in the kernels above (see `fused_gpu.kernel_source`)."""
    from neuromem.neurons.models import se_adlif

    pieces = {"charge": se_adlif.charge, "adapt": se_adlif.adapt, "adaptation_adjoint": se_adlif.adaptation_adjoint,
              "membrane_adjoint": se_adlif.membrane_adjoint}
    return fused_gpu.KernelForm(pieces, _KERNELS, {}, len(se_adlif.constants(model.parameters())))


def sequence(inputs, p, recurrent_weight=None, state=None, return_membrane=False):
    """SE-adLIF over a whole sequence on the generated kernels (as `neuron_sequence`)."""
    from neuromem.neurons.functional.se_adlif import se_adlif_sequence

    return se_adlif_sequence(inputs, p, recurrent_weight, state, return_membrane, fused=True)


def forward(inputs, weight_t, adaptation, membrane, spike, c, zero_reset, surrogate):
    """Spikes and membranes (T, ...) of the whole sequence; adaptation, membrane, spike ((n,) contiguous copies of
    the initial state) end as the final state."""
    kernels = fused_gpu.generated(_model(), surrogate)
    steps, n = inputs.shape[0], inputs[0].numel()
    spikes, membranes = torch.empty_like(inputs), torch.empty_like(inputs)
    arrays = (adaptation, membrane, spike, membranes, spikes)
    if weight_t is None:
        fused_gpu.launch(kernels.forward, n, inputs, inputs, *arrays, n, 0, steps, *c, ZERO_RESET=zero_reset, FED=False)
        return spikes, membranes
    size = weight_t.shape[0]
    feedback = torch.empty_like(membrane)
    for t in range(steps):  # the recurrent product batched over the rows, one fused step after it
        torch.mm(spike.view(-1, size), weight_t, out=feedback.view(-1, size))
        fused_gpu.launch(kernels.forward, n, inputs, feedback, *arrays, n, t, t + 1, *c, ZERO_RESET=zero_reset, FED=True)
    return spikes, membranes


def backward(membranes, weight, grad_spikes, grad_membranes, grad_adaptation, c, zero_reset, surrogate, slope):
    """(dL/d drive (T, ...), gm_0, gw_0) as the other paths' backward through time."""
    from neuromem.neurons.surrogates import get_surrogate

    kernels = fused_gpu.generated(_model(), surrogate)
    steps, n = membranes.shape[0], membranes[0].numel()
    sc = get_surrogate(surrogate).constants(slope)
    grad_drive = torch.empty_like(membranes)
    grad_m = membranes.new_zeros(membranes[0].shape)
    grad_w = (grad_adaptation.detach().clone().contiguous() if grad_adaptation is not None
              else membranes.new_zeros(membranes[0].shape))
    has_gs, has_gm = grad_spikes is not None, grad_membranes is not None
    gs = grad_spikes.contiguous() if has_gs else membranes
    gm = grad_membranes.contiguous() if has_gm else membranes
    flags = dict(ZERO_RESET=zero_reset, HAS_GS=has_gs, HAS_GM=has_gm)
    arrays = (membranes, gs, gm)
    if weight is None:
        fused_gpu.launch(kernels.backward, n, *arrays, membranes, grad_drive, grad_m, grad_w, n, 0, steps - 1, steps,
                         *c, *sc, FED=False, **flags)
        return grad_drive, grad_m, grad_w
    size = weight.shape[0]
    weight_matrix = weight.detach()
    feedback = membranes.new_zeros(membranes[0].shape)
    for t in range(steps - 1, -1, -1):
        if t < steps - 1:
            torch.mm(grad_drive[t + 1].view(-1, size), weight_matrix, out=feedback.view(-1, size))
        fused_gpu.launch(kernels.backward, n, *arrays, feedback, grad_drive, grad_m, grad_w, n, t, t, steps,
                         *c, *sc, FED=t < steps - 1, **flags)
    return grad_drive, grad_m, grad_w


def _model():
    from neuromem.neurons.models.se_adlif import SE_ADLIF

    return SE_ADLIF
