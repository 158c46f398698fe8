"""NIR forms of the leaky neurons, shared by the registry entries that write or read them (lif, cuba, alif, loihi).

Time constants follow snnTorch's NIR convention, forward Euler at the graph's dt (neuromem writes 1e-4 s): a
`nir.CubaLIF` with

    tau_syn = dt / (1 - alpha), tau_mem = dt / (1 - beta), w_in = tau_syn / dt, r = tau_mem / dt

runs i_t = alpha i_{t-1} + x_t, v_t = beta v_{t-1} + i_t, a spike when v_t > v_threshold, then v_t = v_reset
= 0. That is neuromem's cuba neuron, and with alpha = 0 (tau_syn = dt: the current is the step's drive) its
lif neuron. lif is written as that CubaLIF rather than a `nir.LIF` (which says the same) because Norse 1.1.0
reads a nir.LIF without its r (its input then arrives scaled by dt / tau), while the CubaLIF form runs alike
in Norse, snnTorch and Spyx. A neuron without leak (beta = 1, alpha = 0) is a `nir.IF` with r = 1 / dt.

Resets. neuromem's zero reset (v_t = beta (1 - s_{t-1}) v_{t-1} + ...) gives the spikes of NIR's reset to 0
(NIR resets at once, neuromem at the next step's decay; the next step's voltage is the same). neuromem's
default subtract reset (v_t = beta v_{t-1} + ... - threshold s_{t-1}, snnTorch's `Leaky`) has no NIR form: NIR
neurons reset to v_reset. It is written as the reset to 0, with the model and its parameters in the node's
metadata ({"neuromem": JSON}): `neuromem import` restores it, every other reader runs the reset to 0; the
writer's caveat says so (and that `neuromem ablate --neuron-option reset=zero` trains a cell whose every layer
resets to 0, so that its graph is exact), and `neuromem export --compare` measures what it changes.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuromem.errors import NeuromemError

METADATA_KEY = "neuromem"
SUBTRACT_CAVEAT = ("reset 'subtract' has no NIR form: NIR neurons reset to a fixed v_reset, so the graph (written with "
                   "the reset to 0) differs from the cell in every other simulator (neuromem's import restores it from "
                   "the node's metadata); `neuromem ablate --neuron-option reset=zero` trains a cell whose graph is exact")


def metadata_of(node) -> dict[str, Any]:
    """The neuromem record a node carries ({} for a node written elsewhere, or damaged)."""
    raw = (getattr(node, "metadata", None) or {}).get(METADATA_KEY)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        found = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def with_metadata(node, **record):
    """`node` carrying `record` (merged into what it carries) as its neuromem metadata."""
    node.metadata = {**(node.metadata or {}), METADATA_KEY: json.dumps({**metadata_of(node), **record}, default=str)}
    return node


def written_by(node) -> str | None:
    """The neuron model a node says it was written from."""
    name = metadata_of(node).get("neuron")
    return name if isinstance(name, str) else None


def record_from_metadata(node, model: str, parameters: type):
    """The parameter record of `model` the node's metadata holds (None: it holds another model's, or none)."""
    found = metadata_of(node)
    if found.get("neuron") != model or not isinstance(found.get("parameters"), dict):
        return None
    try:
        return parameters(**found["parameters"])
    except (TypeError, ValueError) as error:
        raise NeuromemError(f"its neuromem metadata holds {model} parameters that do not fit ({error})") from None


def leaky_node(alpha: float, beta: float, threshold: float, shape: tuple[int, ...], dt: float, reset: str,
               model: str, p) -> tuple[Any, str | None]:
    """(node, caveat) of a leaky neuron (see the module doc); the record `p` goes into its metadata."""
    import nir

    alpha, beta, threshold = float(alpha), float(beta), float(threshold)
    if alpha >= 1.0:
        raise NeuromemError(f"NIR export refused: neuron '{model}' has alpha = 1 (a synaptic current that never "
                            "decays: tau_syn infinite); NIR needs alpha < 1")
    ones = np.ones(shape)
    caveat = SUBTRACT_CAVEAT if reset == "subtract" else None
    record = {"neuron": model, "parameters": dataclasses.asdict(p)}
    if beta >= 1.0:
        if alpha > 0.0:
            raise NeuromemError(f"NIR export refused: neuron '{model}' has beta = 1 with alpha = {alpha} (a current "
                                "into a voltage without leak): NIR's IF has no synaptic current; use beta < 1")
        node = nir.IF(r=ones / dt, v_threshold=ones * threshold, v_reset=np.zeros(shape))
        return with_metadata(node, **record), caveat
    tau_syn, tau_mem = dt / (1.0 - alpha), dt / (1.0 - beta)
    node = nir.CubaLIF(tau_syn=ones * tau_syn, tau_mem=ones * tau_mem, r=ones * tau_mem / dt, v_leak=np.zeros(shape),
                       v_threshold=ones * threshold, v_reset=np.zeros(shape), w_in=ones * tau_syn / dt)
    return with_metadata(node, **record), caveat


@dataclass(frozen=True)
class Leaky:
    """A NIR neuron node read as neuromem's leaky neuron: decays per step, threshold, and the factor on its input."""

    alpha: float
    beta: float
    threshold: float
    gain: float


def uniform(values, what: str) -> float:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0 or not (np.all(array == array[0]) or np.allclose(array, array[0], rtol=1e-6)):
        raise NeuromemError(f"{what} differs between neurons; neuromem needs one value per layer")
    return float(array[0])


def read_leaky(node, dt: float) -> Leaky | None:
    """A nir.LIF, nir.CubaLIF or nir.IF as a leaky neuron with zero reset (None: another node type)."""
    import nir

    if not isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF)):
        return None
    if not isinstance(node, nir.IF) and not np.allclose(np.asarray(node.v_leak, dtype=np.float64), 0.0):
        raise NeuromemError("v_leak != 0 is not supported (neither snnTorch nor neuromem model it)")
    if node.v_reset is not None and not np.allclose(np.asarray(node.v_reset, dtype=np.float64), 0.0):
        raise NeuromemError("a reset to v_reset != 0 is not supported; neuromem resets to 0")
    threshold = uniform(node.v_threshold, "v_threshold")
    if isinstance(node, nir.IF):  # dv/dt = r I: v_t = v_{t-1} + dt r x_t
        return Leaky(0.0, 1.0, threshold, uniform(node.r, "r") * dt)
    if isinstance(node, nir.CubaLIF):
        tau_syn, tau_mem = uniform(node.tau_syn, "tau_syn"), uniform(node.tau_mem, "tau_mem")
        alpha, beta = 1.0 - dt / tau_syn, 1.0 - dt / tau_mem
        # the current gets w_in dt/tau_syn of the input, the voltage r dt/tau_mem of the current
        gain = uniform(node.w_in, "w_in") * dt / tau_syn * uniform(node.r, "r") * dt / tau_mem
    else:
        tau = uniform(node.tau, "tau")
        alpha, beta = 0.0, 1.0 - dt / tau
        gain = uniform(node.r, "r") * dt / tau
    if not (0.0 <= beta <= 1.0 and 0.0 <= alpha < 1.0):
        raise NeuromemError(f"time constants shorter than dt={dt} s; import with the graph's own dt (--dt)")
    if abs(alpha) < 1e-12:
        alpha = 0.0
    return Leaky(alpha, beta, threshold, gain)
