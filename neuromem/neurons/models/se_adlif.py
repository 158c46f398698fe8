"""Adaptive LIF with symplectic-Euler discretization, SE-adLIF (Baronig, Ferrand, Sabathiel and
Legenstein, Nat. Commun. 2025, "Advancing spatio-temporal processing in spiking neural networks
through adaptation": 95.81% on SHD). The paper's update, per neuron, with drive I_t:

    u_t = alpha u_{t-1} + (1 - alpha) (I_t - w_{t-1})
    s_t = H(u_t - theta_p),  u_t <- u_t (1 - s_t)        (the reset by the detached spike)
    w_t = rho w_{t-1} + (1 - rho) (a u_t + b s_t)        (symplectic Euler: the new, reset u_t and s_t)

(the paper's beta is `rho` here). Written, as every neuromem model, on the membrane before its
reset and in the units of LIF's membrane v = beta v + d (gain 1 / (1 - beta) for a steady drive,
for which the front ends scale their initial weights): m = u / (1 - alpha), threshold
theta = theta_p / (1 - alpha). With d_t the drive (input plus recurrent s_{t-1} W^T):

    m_t = alpha R(m_{t-1}, s_{t-1}) + d_t - w_{t-1}                         membrane
    s_t = H(m_t - theta)                                                   (surrogate gradient)
    w_t = rho w_{t-1} + (1 - rho) (a (1 - alpha) R(m_t, s_t) + b s_t)      adaptation current

R(m, s) = m (1 - s) (reset="zero", the paper's) or m - theta s ("subtract"), with the spike
detached as in the paper's code. These are the paper's dynamics exactly (w, a, b, spikes as
there; the membrane scaled by 1 / (1 - alpha)); only the surrogate reads m - theta, so it is
(1 - alpha) times narrower in the paper's units. `membrane` holds m_t before the reset (the value
the threshold is tested on), so the paper's u_t is (1 - alpha) R(m_t, s_t). Symplectic Euler:
w_t reads the new membrane and spike (explicit Euler would read u_{t-1}, s_{t-1}); the paper shows
this keeps the discretized oscillator stable where explicit Euler diverges. Gradients flow through
w into m and back (the u <-> w coupling, the resonance, is the point of the model: nothing is
detached but the reset), and through b s_t by the surrogate.

Record: `beta` is the paper's alpha = exp(-dt/tau_u) (the membrane decay per step, as in every
neuromem model, so the front ends' `beta` applies to it), `rho` its beta = exp(-dt/tau_w) (ALIF's
name for an adaptation decay), `a`, `b` its q a, q b (q = 120, a in [0, 1], b in [0, 2]: here a in
[0, 120], b in [0, 240]), `threshold` its theta / (1 - alpha) (its theta = 1 is 1 / (1 - beta)
here; 1, the default, is the paper's 0.3 at the SHD front end's beta 0.7). The paper's tau_u in
[5, 25] ms, tau_w in [60, 300] ms give alpha in [0.06, 0.57], rho in [0.79, 0.955] at the SHD front
end's 14 ms bins. Without spikes the (u, w) system is linear with determinant alpha rho and trace
alpha + rho - (1 - alpha)(1 - rho) a: its response decays iff
a < (1 + alpha)(1 + rho) / ((1 - alpha)(1 - rho)), checked when the record is built (at coarse
steps the paper's couplings can cross it: alpha 0.06, rho 0.79 allow a < 9.6).

Defaults: a = 0.5, b = 2, small next to the paper's initial means (q a = 60, q b = 120). With one
scalar set for every neuron at 14 ms bins, larger couplings trained worse in short runs (SHD
hopfield, embedded data, 512 samples, 2 epochs, seed 0, test accuracy: a=0, b=0 (no adaptation)
0.52; a=0, b=2 0.45; a=0, b=8 0.42; a=0.5, b=0 0.41; a=0.5, b=2 0.37; a=0.5, b=8 0.36; a=4, b=0..8
0.12-0.15; LIF 0.57). Sweep them with the front-end options (`--front-option a=0.5,4
--front-option b=2,8`): the defaults are a starting point, not a result.

Constants are scalars, one set per layer, not the paper's per-neuron trained tau_u, tau_w, a, b. A
parameter record here is shape-free and per layer; per-neuron values would have to be keyed on
the position of a neuron in the tensor the neurons receive, which is memory order (a sparse
convolution hands its currents over channels-last on the fast path only), so a neuron would get
different constants on the fast and the reference path. Heterogeneous (and trained) constants
belong to the layers, as parameters of their own; not done here.

Outside the template of `neuromem.neurons.models` (there the aux trace is updated before the
charge from s_{t-1} and carries no gradient if the threshold reads it): registered with
`dynamics=None`, its own reference `step` (the test oracle: autograd through every step) and its
own fast path (`sequence`: one autograd node per sequence, numba kernels on CPU, a torch loop
elsewhere, the backward through time written out; `neuromem.neurons.functional.se_adlif`). The
update and the derivative pieces below are written once, as plain arithmetic: the reference step,
the torch loop and (compiled by numba, `register_jitable`) the kernels all call them. Write them
with the constants `c` only, no float literals, so that float32 stays float32 in the kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from neuromem.neurons.functional.surrogate import heaviside_surrogate
from neuromem.neurons.models import NeuronModel, check_reset_and_surrogate, check_unit_interval, register_neuron
from neuromem.neurons.models.lif import Reset
from neuromem.neurons.models.membrane import _jitable


@dataclass(frozen=True)
class SEAdLIFParameters:
    beta: float = 0.9  # membrane decay per time step (the paper's alpha)
    threshold: float = 1.0  # in LIF's units: the paper's theta / (1 - alpha)
    reset: Reset = "zero"  # the paper's u_t (1 - s_t)
    surrogate: str = "fast_sigmoid"
    surrogate_slope: float = 5.0
    rho: float = 0.9  # adaptation decay per time step (the paper's beta): tau_w 133 ms at 14 ms bins
    a: float = 0.5  # sub-threshold coupling w <- m (the paper's q a, in [0, 120])
    b: float = 2.0  # spike-triggered adaptation (the paper's q b, in [0, 240])

    def __post_init__(self) -> None:
        check_unit_interval("beta", self.beta)
        check_unit_interval("rho", self.rho)
        if not (self.a >= 0 and self.b >= 0):
            raise ValueError(f"a and b must be >= 0, got a={self.a}, b={self.b}")
        if self.beta < 1 and self.rho < 1:
            limit = (1 + self.beta) * (1 + self.rho) / ((1 - self.beta) * (1 - self.rho))
            if not self.a < limit:
                raise ValueError(
                    f"a={self.a} makes the sub-threshold oscillation grow at beta={self.beta}, rho={self.rho}: "
                    f"it decays for a < (1 + beta)(1 + rho) / ((1 - beta)(1 - rho)) = {limit:.4g}"
                )
        check_reset_and_surrogate(self.reset, self.surrogate)


class SEAdLIFState(NamedTuple):
    adaptation: torch.Tensor  # w
    membrane: torch.Tensor  # m, before the reset
    spikes: torch.Tensor


# c = constants(p): the indices below; floats for torch, the membranes' dtype in the kernels
ALPHA, RHO, ADAPT_GAIN, A, B, THETA = range(6)


def constants(p: SEAdLIFParameters) -> tuple[float, ...]:
    # a (1 - alpha): the paper's coupling a on the membrane in LIF's units
    return float(p.beta), float(p.rho), 1.0 - float(p.rho), float(p.a) * (1.0 - float(p.beta)), float(p.b), float(p.threshold)


@_jitable
def reset_membrane(m, s, c, zero_reset):
    """R(m, s): the membrane after its reset by the (detached) spike s."""
    if zero_reset:
        return m - m * s
    return m - s * c[5]


@_jitable
def charge(drive, m_prev, s_prev, w_prev, c, zero_reset):
    """m_t from the drive and the previous state (s_prev: the detached s_{t-1})."""
    return c[0] * reset_membrane(m_prev, s_prev, c, zero_reset) + (drive - w_prev)


@_jitable
def adapt(w_prev, m, s_reset, s, c, zero_reset):
    """w_t from the new membrane and spike: s_reset (detached) resets m, s (surrogate) drives b."""
    return c[1] * w_prev + c[2] * (c[3] * reset_membrane(m, s_reset, c, zero_reset) + c[4] * s)


# ------------------------------------------------------------------ the backward pieces
# With h_t = surrogate'(m_t - theta), k_t = dR(m_t, s_t)/dm_t (1 - s_t, or 1) and the
# gradients from outside the neuron dL/ds_t (loss, recurrent drive at t + 1) and dL/dm_t:
#   gw_t = rho gw_{t+1} - gm_{t+1}                             (gw_{T-1} = dL/dw of the final state)
#   gm_t = dL/dm_t + h_t (dL/ds_t + (1 - rho) b gw_t) + k_t (alpha gm_{t+1} + (1 - rho) a (1 - alpha) gw_t)
#   gd_t = gm_t                                                dL/d(drive_t)
# and for the initial state: dL/dw_{-1} = rho gw_0 - gm_0, dL/dm_{-1} = alpha k_{-1} gm_0.


@_jitable
def through_reset(g, s, zero_reset):
    """g dR(m, s)/dm: a gradient through the reset by the detached spike s."""
    if zero_reset:
        return g - g * s
    return g


@_jitable
def adaptation_adjoint(gw_next, gm_next, c):
    """gw_t from step t + 1 (w_t enters w_{t+1} and m_{t+1})."""
    return c[1] * gw_next - gm_next


@_jitable
def membrane_adjoint(h, s, g_spike, g_membrane, gm_next, gw, c, zero_reset):
    """gm_t: h the surrogate slope and s the spike of step t; g_spike, g_membrane from outside."""
    return g_membrane + h * (g_spike + c[2] * c[4] * gw) + through_reset(c[0] * gm_next + c[2] * c[3] * gw, s, zero_reset)


def se_adlif_step(x: torch.Tensor, state: SEAdLIFState, p: SEAdLIFParameters) -> tuple[torch.Tensor, SEAdLIFState]:
    """One reference step (autograd records it): the test oracle of the fast path."""
    c, zero_reset = constants(p), p.reset == "zero"
    membrane = charge(x, state.membrane, state.spikes.detach(), state.adaptation, c, zero_reset)
    spikes = heaviside_surrogate(membrane - c[THETA], p.surrogate, p.surrogate_slope)
    adaptation = adapt(state.adaptation, membrane, spikes.detach(), spikes, c, zero_reset)
    return spikes, SEAdLIFState(adaptation, membrane, spikes)


def initial_se_adlif_state(like: torch.Tensor) -> SEAdLIFState:
    zeros = torch.zeros_like(like)
    return SEAdLIFState(zeros, zeros, zeros)


def _sequence(inputs, p, recurrent_weight=None, state=None, return_membrane=False):
    from neuromem.neurons.functional.se_adlif import se_adlif_sequence  # the kernels import this file

    return se_adlif_sequence(inputs, p, recurrent_weight, state, return_membrane)


SE_ADLIF = register_neuron(
    NeuronModel(
        "se-adlif", SEAdLIFParameters, SEAdLIFState, None, aux_field="adaptation", step=se_adlif_step,
        initial_state=initial_se_adlif_state, sequence=_sequence, gpu_module="neuromem.neurons.functional.se_adlif_gpu",
        doc="adaptive LIF, symplectic Euler (Baronig et al. 2025): adaptation current coupled both ways",
        nir_refusal="its adaptation current (fed by the membrane and the spikes, subtracted from the drive) is no "
                    "NIR 1.0 neuron (LIF, CubaLIF, IF)",
    )
)
