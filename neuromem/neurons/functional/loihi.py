"""Loihi 2 CUBA-LIF neuron in fixed point, bit-exact with Lava's `PyLifModelBitAcc`.

The arithmetic follows lava-nc 0.10.0 `lava/proc/lif/models.py`
(`AbstractPyLifModelFixed.subthr_dynamics`, `PyLifModelBitAcc`) and
`lava/proc/dense/models.py` (`AbstractPyDenseModelBitAcc.run_spk`), step by step:

    synapse (Dense):  a[t]  = shift(sum_j w_ij s_j[t-1], weight_exp)   one step late
                      shift(x, e) = x << e if e > 0 else x >> -e        (arithmetic: floor)
    current:          u[t]  = trunc(u[t-1] * (4096 - (du + 1)) / 4096) + (a[t] << 6)
                      then wrapped into 24 bits the way Lava wraps it
    voltage:          v[t]  = clip(trunc(v[t-1] * (4096 - dv) / 4096) + u[t] + (bias_mant << bias_exp),
                               -(2**23 - 1), 2**23 - 1)
    spike:            s[t]  = v[t] > (vth << 6);  v[t] = 0 where s[t]

Note Lava's asymmetry: the current decays by (du + 1)/4096 (a 1-bit `ds_offset`
lets the effective constant reach 4096), the voltage by dv/4096. lava-dl's netx
stores the current decay as `iDecay = du + 1`.

All values are integers carried in float64 tensors: every intermediate stays
below 2**53, so float64 is exact, and autograd can run through it. Rounding
(trunc, floor), the 24-bit wrap and the clip use straight-through estimators
(forward: the exact integer op; backward: identity), and the spike uses a
surrogate gradient scaled to the threshold, so the very function that is
bit-exact with Lava in eval is the one trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from neuromem.neurons.functional.surrogate import heaviside_surrogate

DECAY_BITS = 12
DECAY_UNITY = 1 << DECAY_BITS  # 4096
STATE_BITS = 24
STATE_LIMIT = 1 << (STATE_BITS - 1)  # 2**23
ACTIVATION_SHIFT = 6  # Lava left-shifts synaptic input and threshold by 6 bits
THRESHOLD_SHIFT = 6
MAX_VTH = (1 << 17) - 1  # vth is a 17-bit unsigned mantissa
WEIGHT_MANTISSA_MAX = 127  # 8-bit signed mantissa; mixed-sign weights are 2 * mantissa on Loihi
WEIGHT_MANTISSA_MIN = -128


@dataclass(frozen=True)
class LoihiParameters:
    """Parameters of Lava's fixed-point LIF process (`lava.proc.lif.process.LIF`) and its Dense input.

    du, dv: 12-bit decays (0..4095), exactly as passed to `LIF(du=..., dv=...)`;
        current decays by (du + 1)/4096 per step, voltage by dv/4096.
    vth: 17-bit threshold mantissa; a neuron fires when v > vth << 6.
    bias_mant, bias_exp: bias added to v every step: bias_mant << bias_exp.
    weight_exp: the Dense process's shared weight exponent.
    surrogate, surrogate_slope: the spike's backward pass, on (v - vth<<6) / (vth<<6).
    """

    du: int = 511
    dv: int = 256
    vth: int = 1024
    bias_mant: int = 0
    bias_exp: int = 0
    weight_exp: int = 0
    surrogate: str = "atan"
    surrogate_slope: float = 4.0

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("du", self.du, 0, DECAY_UNITY - 1),
            ("dv", self.dv, 0, DECAY_UNITY - 1),
            ("vth", self.vth, 1, MAX_VTH),
            ("bias_mant", self.bias_mant, -4096, 4095),
            ("bias_exp", self.bias_exp, 0, 7),
            ("weight_exp", self.weight_exp, -8, 7),
        ):
            if int(value) != value or not low <= value <= high:
                raise ValueError(f"Loihi {name} must be an integer in [{low}, {high}], got {value!r}")

    @property
    def effective_threshold(self) -> int:
        return self.vth << THRESHOLD_SHIFT

    @property
    def effective_bias(self) -> int:
        return self.bias_mant << self.bias_exp



class LoihiState(NamedTuple):
    current: torch.Tensor  # u, integer-valued
    voltage: torch.Tensor  # v after reset, integer-valued
    spikes: torch.Tensor


def _straight_through(x: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """Forward: `exact`; backward: identity to x."""
    return x + (exact - x).detach()


def trunc_ste(x: torch.Tensor) -> torch.Tensor:
    return _straight_through(x, torch.trunc(x))


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    return _straight_through(x, torch.floor(x))


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return _straight_through(x, torch.round(x))


def decay(state: torch.Tensor, keep: int) -> torch.Tensor:
    """Lava: sign(x) * (|x * keep| >> 12), i.e. x * keep / 4096 truncated toward zero."""
    return trunc_ste(state * (keep / DECAY_UNITY))


def wrap_current(current: torch.Tensor) -> torch.Tensor:
    """Lava's 24-bit wrap of u, reproduced literally (including its second branch using the unwrapped value)."""
    limit = STATE_LIMIT
    wrapped = torch.where(current > limit, current - 2 * limit, current)
    wrapped = torch.where(wrapped <= -limit, current + 2 * limit, wrapped)
    return _straight_through(current, wrapped)


def clip_voltage(voltage: torch.Tensor) -> torch.Tensor:
    limit = STATE_LIMIT - 1
    return _straight_through(voltage, voltage.clamp(-limit, limit))


def shift_activation(accumulated: torch.Tensor, weight_exp: int) -> torch.Tensor:
    """Dense: left shift for a positive exponent, arithmetic right shift (floor) for a negative one."""
    if weight_exp == 0:  # x * 1.0: the same values and gradient, without a pass over x
        return accumulated
    if weight_exp > 0:
        return accumulated * float(1 << weight_exp)
    return floor_ste(accumulated / float(1 << -weight_exp))


def loihi_step(activation: torch.Tensor, state: LoihiState, p: LoihiParameters) -> tuple[torch.Tensor, LoihiState]:
    """One Lava time step for synaptic input `activation` (the integer a_in the LIF receives)."""
    current = decay(state.current, DECAY_UNITY - (p.du + 1)) + activation * float(1 << ACTIVATION_SHIFT)
    current = wrap_current(current)
    voltage = clip_voltage(decay(state.voltage, DECAY_UNITY - p.dv) + current + float(p.effective_bias))
    threshold = float(p.effective_threshold)
    spikes = heaviside_surrogate((voltage - threshold) / threshold, p.surrogate, p.surrogate_slope)
    voltage = voltage * (1.0 - spikes.detach())  # Lava: v[spiked] = 0
    return spikes, LoihiState(current, voltage, spikes)


def initial_loihi_state(like: torch.Tensor) -> LoihiState:
    zeros = torch.zeros_like(like)
    return LoihiState(zeros, zeros, zeros)


def loihi_sequence(
    activations: torch.Tensor,
    p: LoihiParameters,
    recurrent_weight: torch.Tensor | None = None,
    recurrent_exp: int = 0,
    state: LoihiState | None = None,
) -> tuple[torch.Tensor, torch.Tensor, LoihiState]:
    """Run the fixed-point neuron over (T, batch, N) feed-forward activations.

    `activations[t]` is what the LIF receives at step t from its input Dense
    (already delayed by the caller: Dense delivers step t-1's spikes at t).
    `recurrent_weight` (N, N) holds integer weights; its Dense is a separate
    Lava process with its own exponent and rounding, also one step late.
    Returns spikes (T, batch, N), voltages after reset (T, batch, N), final state.

    On CPU with numba the compiled kernels run (`loihi_kernels`: spikes and
    voltages bit for bit the reference's, gradients to float rounding); under
    `reference_core()`, elsewhere, or with a state that needs a gradient, the
    reference loop (`loihi_reference_sequence`).
    """
    from neuromem.neurons.functional import loihi_kernels

    if loihi_kernels.kernels_apply(activations, recurrent_weight, state):
        return loihi_kernels.loihi_fast_sequence(activations, p, recurrent_weight, recurrent_exp, state)
    return loihi_reference_sequence(activations, p, recurrent_weight, recurrent_exp, state)


def loihi_reference_sequence(
    activations: torch.Tensor,
    p: LoihiParameters,
    recurrent_weight: torch.Tensor | None = None,
    recurrent_exp: int = 0,
    state: LoihiState | None = None,
) -> tuple[torch.Tensor, torch.Tensor, LoihiState]:
    """`loihi_sequence` as the step-by-step loop over `loihi_step` (autograd through every step): the oracle."""
    state = state if state is not None else initial_loihi_state(activations[0])
    spikes_out, voltages = [], []
    for a in activations:
        if recurrent_weight is not None:
            a = a + shift_activation(state.spikes @ recurrent_weight.t(), recurrent_exp)
        spikes, state = loihi_step(a, state, p)
        spikes_out.append(spikes)
        voltages.append(state.voltage)
    return torch.stack(spikes_out), torch.stack(voltages), state


def loihi_neuron_sequence(inputs, p, recurrent_weight=None, state=None, return_membrane=False):
    """The registry entry's fast path (`neuron_sequence`'s signature; the recurrent input unshifted, as the
    reference step loop adds it): spikes, final state (and the voltages)."""
    spikes, voltages, final = loihi_sequence(inputs, p, recurrent_weight, 0, state)
    if return_membrane:
        return spikes, final, voltages
    return spikes, final


class _DelayOneStep(torch.autograd.Function):
    """`delay_one_step` into a pooled contiguous buffer (`buffers.empty`: large activations would otherwise be
    fresh pages every call), in one copy that also brings a channels-last input to the logical order."""

    @staticmethod
    def forward(ctx, x):
        from neuromem.neurons.functional import buffers

        out = buffers.empty(x.shape, x.dtype)
        out[0].zero_()
        out[1:].copy_(x[:-1])
        return out

    @staticmethod
    def backward(ctx, grad):
        grad_x = torch.empty_like(grad)
        grad_x[:-1].copy_(grad[1:])
        grad_x[-1].zero_()
        return grad_x


def delay_one_step(x: torch.Tensor) -> torch.Tensor:
    """(T, ...) -> (T, ...) shifted one step later with zeros first: Lava's Dense delivers at t+1."""
    from neuromem.neurons.functional.neuron import fast_path_enabled

    if fast_path_enabled() and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.shape[0] > 0:
        return _DelayOneStep.apply(x)
    return torch.cat([torch.zeros_like(x[:1]), x[:-1]], dim=0)


def quantize_weight(weight: torch.Tensor) -> torch.Tensor:
    """Float weight in [-1, 1) -> Loihi integer weight 2 * m, m = round(128 w) in [-128, 127].

    Lava's Dense (mixed sign, 8 weight bits) truncates the least significant bit,
    so only even integers in [-256, 254] survive unchanged; gradients pass straight
    through the rounding (and stop outside the clip range).
    """
    mantissa = round_ste(weight * 128.0).clamp(WEIGHT_MANTISSA_MIN, WEIGHT_MANTISSA_MAX)
    return 2.0 * mantissa
