"""The leaky membrane with its reset, written once for the template models (lif, cuba, alif):

    v_t = beta v_{t-1} + inflow_t - theta_t s_{t-1}        (reset="subtract")
    v_t = beta (1 - s_{t-1}) v_{t-1} + inflow_t            (reset="zero")

and its derivative dv_{t+1}/dv_t. A model passes what flows in (its drive, or CUBA's synaptic
current) and the threshold in effect (ALIF's adaptive one). Plain arithmetic on torch tensors in
the reference step and the torch loop; numba compiles the same functions into the kernels where a
model's `charge` / `leak` call them (`register_jitable`). The Loihi neuron's fixed-point update
genuinely differs and lives in `loihi.py`.
"""

from __future__ import annotations

try:
    from numba.extending import register_jitable as _register_jitable

    _jitable = _register_jitable(inline="always")
except ImportError:  # pragma: no cover - numba comes with tonic
    def _jitable(function):
        return function


@_jitable
def leaky_charge(inflow, v, s, beta, threshold, zero_reset):
    if zero_reset:
        # beta (1 - s) for a spike s in {0, 1}, without a float literal (float32 stays float32)
        return (beta - beta * s) * v + inflow
    return beta * v + inflow - s * threshold


@_jitable
def leaky_leak(s, beta, zero_reset):
    if zero_reset:
        return beta - beta * s
    return beta
