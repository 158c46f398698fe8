"""Neuron models, one file each, behind one registry (after SpikingJelly's kernel template).

A model is defined once, in its own file: a validated parameter record, a state
record, and the update written as plain arithmetic (`MembraneDynamics`) that runs
unchanged on torch tensors and, compiled by numba, on scalars. Every execution
path is generated from that one definition (`neuromem.neurons.functional.neuron`):

- the reference step (`model.step`, autograd through every step: the test oracle);
- the torch loop (the fast path off CPU or without numba; one autograd node per
  sequence, the backward through time written once for all models);
- the numba forward/backward kernels (`functional/neuron_kernels.py`: the loops
  written once, each (model, surrogate) pair compiled into its own kernels);
- the fused convolution + neuron kernels, for models that declare `fused_conv`.

The template: state = membrane v, spikes s and at most one auxiliary trace `aux`
(CUBA's synaptic current, ALIF's adaptation). Per step, with drive d_t (input plus
recurrent s_{t-1} W^T) and the previous spike s_{t-1} detached (snnTorch's reset):

    aux_t = aux_update(aux_{t-1}, d_t, s_{t-1}, c)          (models with an aux trace)
    v_t   = charge(d_t, v_{t-1}, s_{t-1}, aux_t, c, zero_reset)
    s_t   = H(v_t - threshold(aux_t, c))                     (surrogate gradient)

`c` is the tuple `constants(p)` of the parameter record (floats for torch, the
membranes' dtype in the kernels: write the functions with these constants only, no
float literals, so float32 stays float32). The backward pieces, the derivatives the
hand-written backward needs (the reset and the threshold see only detached spikes):

    leak(s_t, c, zero_reset) = dv_{t+1}/dv_t
    dv_t/dd_t = 1, or, with `drive_decay` (the aux trace is a linear filter of the
    drive, CUBA: i_t = alpha i_{t-1} + d_t, v_t reads i_t): dv_t/di_t = 1 and
    di_{t+1}/di_t = drive_decay(c)
    an `adaptive` model's threshold depends on aux (not on the drive): its aux
    trace is kept for the backward, and no gradient flows through the threshold.

The tests check every registered model's fast paths against its reference step
(autograd through `charge`/`aux_update`), so a wrong backward piece fails there.

A model that does not fit the template (the Loihi fixed-point neuron: integer
decays, wraps, clips) registers with `dynamics=None`, its own `step` and
`initial_state`: it runs the reference loop on every device, and nothing else,
unless it also brings a fast path of its own, `sequence` (SE-adLIF, `se_adlif.py`:
its adaptation is updated after the spike and carries gradient both ways, which the
template's backward does not cover; Loihi, `functional/loihi_kernels.py`: its integer
arithmetic in numba, bit-exact with its step), which `neuron_sequence` then runs in place of the
reference loop; the tests check it against the model's `step`.

NIR (`neuromem.export.nir`): a model says how it is written to and read from a NIR graph on its
entry, `to_nir` (parameter record, neuron shape, dt -> the NIR node and a caveat, one clause on what
the node does not say, or None; a NeuromemError in one line naming what NIR cannot express) and `from_nir` (NIR node, dt -> an `NIRNeuron`, or None when the node
is not this model's); a model without them gives `nir_refusal` (one clause: what NIR cannot say).
The exporter writes the synapses and the graph around them, the importer asks each entry in turn
(a node whose metadata names a model asks that one first). Shared pieces: `nir_forms.py`.

Adding a model is one file here plus one registration line (the import at the end
of this file); see `alif.py`. `spiking_layers=True` (the default) lets
`SpikingLinear` / `SpikingConv2d` run it, so the front ends (`models/frontends.py`
NEURON_LAYERS) and the CLI's `--neuron` choices offer it. A model with layers of its
own registers with `spiking_layers=False`, and its layer kinds are entered in
NEURON_LAYERS by name (Loihi: `LoihiLinear` / `LoihiConv2d`, see `loihi.py`).

A model's entry also carries what a spiking memory takes on it for an option left unset
(`memory_tuning`, a `MemoryTuning`: width, init gain, surrogate slope, firing-rate band), so no
memory module keeps a table per neuron model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class MembraneDynamics:
    """The template pieces of a model (see the module doc); plain Python, torch and numba alike."""

    constants: Callable[[Any], tuple[float, ...]]  # parameter record -> c
    charge: Callable  # (drive, v_prev, s_prev, aux, c, zero_reset) -> v
    threshold: Callable  # (aux, c) -> the spike threshold
    leak: Callable  # (s, c, zero_reset) -> dv_{t+1}/dv_t
    aux_update: Callable | None = None  # (aux_prev, drive, s_prev, c) -> aux; None: no aux trace
    drive_decay: Callable | None = None  # c -> d aux_{t+1} / d aux_t, when aux filters the drive
    adaptive: bool = False  # the threshold reads aux (which then carries no gradient)

    def __post_init__(self) -> None:
        if (self.drive_decay is not None or self.adaptive) and self.aux_update is None:
            raise ValueError("drive_decay / adaptive need an aux trace (aux_update)")
        if self.drive_decay is not None and self.adaptive:
            raise ValueError("a model's aux trace either filters the drive or adapts the threshold, not both")


@dataclass(frozen=True)
class MemoryTuning:
    """What a spiking memory (`neuromem.memory.spiking_layers.SpikingOptions`) takes on this neuron model for
    an option left unset (None): its width (`dim`), the init gain of hopfield-spiking's layers, the surrogate
    slope of its neurons (None: the model's own) and its firing-rate band (floor, ceiling) for the
    training-only penalty ((0, 1): none). The defaults suit the float spiking models; a model with other
    needs (Loihi's fixed point, `loihi.py`) gives its own on its entry, beside the measurements that chose them."""

    width: int = 128
    init_gain: float = 1.0
    surrogate_slope: float | None = None
    rate_band: tuple[float, float] = (0.0, 1.0)


@dataclass(frozen=True)
class NeuronModel:
    name: str
    parameters: type  # the validated, immutable parameter record
    state: type  # NamedTuple: (aux field, if any,) membrane, spikes
    dynamics: MembraneDynamics | None  # None: a model outside the template (own step, reference loop only)
    aux_field: str | None = None  # the state field holding the aux trace
    step: Callable | None = None  # (x, state, p) -> (spikes, state); generated for template models
    initial_state: Callable | None = None  # like -> zero state; generated for template models
    fused_conv: bool = False  # the fused convolution + neuron kernels cover it (no aux trace)
    # outside the template only: its own fast path, (inputs, p, recurrent_weight, state, return_membrane)
    # -> as `neuron_sequence`; None: the reference loop
    sequence: Callable | None = None
    # outside the template only: the module generating its fused GPU kernels from its own step functions
    # (`kernel_form(surrogate)`, `sequence(...)`; `neuromem.neurons.fused_gpu`); "": no fused GPU path
    gpu_module: str = ""
    spiking_layers: bool = True  # SpikingLinear / SpikingConv2d run it (front ends, --neuron)
    memory_tuning: MemoryTuning = MemoryTuning()  # a spiking memory's defaults on this model
    doc: str = ""
    # NIR (see the module doc): (p, shape, dt) -> (node, caveat or None); (node, dt, exact) -> NIRNeuron | None;
    # without to_nir, nir_refusal says in one clause what NIR cannot express
    to_nir: Callable | None = None
    from_nir: Callable | None = None
    nir_refusal: str = ""

    def __post_init__(self) -> None:
        if self.dynamics is None and (self.step is None or self.initial_state is None):
            raise ValueError(f"neuron model {self.name!r}: without dynamics it needs its own step and initial_state")
        if self.dynamics is not None and (self.dynamics.aux_update is None) != (self.aux_field is None):
            raise ValueError(f"neuron model {self.name!r}: an aux trace needs aux_field and aux_update together")
        if self.fused_conv and (self.dynamics is None or self.dynamics.aux_update is not None):
            raise ValueError(f"neuron model {self.name!r}: the fused convolution covers template models without aux")
        if self.sequence is not None and self.dynamics is not None:
            raise ValueError(f"neuron model {self.name!r}: a template model's fast path is generated, not given")
        if self.to_nir is None and not self.nir_refusal:
            raise ValueError(f"neuron model {self.name!r}: give to_nir, or nir_refusal saying what NIR cannot express")

    @property
    def has_kernels(self) -> bool:
        """Whether the numba kernels (and the generic torch loop) are generated for it."""
        return self.dynamics is not None

    @property
    def has_fast_path(self) -> bool:
        """Whether `neuron_sequence` runs something other than the reference loop (the kernels, or its own)."""
        return self.dynamics is not None or self.sequence is not None

    def make_parameters(self, **fields) -> Any:
        names = self.parameters.__dataclass_fields__
        unknown = [k for k in fields if k not in names]
        if unknown:
            raise ValueError(
                f"neuron {self.name!r} has no parameter {', '.join(unknown)}; valid: {', '.join(names)}"
            )
        return self.parameters(**fields)

    def check(self, p: Any) -> None:
        if type(p) is not self.parameters:
            raise TypeError(f"neuron {self.name!r} takes {self.parameters.__name__}, got {type(p).__name__}")


@dataclass(frozen=True)
class NIRNeuron:
    """What a model reads from a NIR neuron node: its parameter record, the factor its drive is the NIR
    node's input times (a synapse's weights and bias are multiplied by it), the same for a recurrent
    weight (None: `gain`), and keyword arguments of the layer that runs it (e.g. Loihi's recurrent_exp)."""

    parameters: Any
    gain: float = 1.0
    recurrent_gain: float | None = None
    layer: tuple[tuple[str, Any], ...] = ()


_MODELS: dict[str, NeuronModel] = {}


def register_neuron(model: NeuronModel) -> NeuronModel:
    if model.name in _MODELS:
        raise ValueError(f"neuron model {model.name!r} is already registered")
    if any(m.parameters is model.parameters for m in _MODELS.values()):
        raise ValueError(f"neuron model {model.name!r}: its parameter record belongs to another model")
    if model.dynamics is not None:
        from neuromem.neurons.functional.neuron import template_initial_state, template_step

        model = _replace(model, step=model.step or template_step(model), initial_state=model.initial_state or template_initial_state(model))
    _MODELS[model.name] = model
    return model


def _replace(model: NeuronModel, **changes) -> NeuronModel:
    import dataclasses

    return dataclasses.replace(model, **changes)


def neuron_names() -> tuple[str, ...]:
    return tuple(_MODELS)


def get_neuron(name: str) -> NeuronModel:
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown neuron model {name!r}; valid: {', '.join(_MODELS)}") from None


def neuron_of(p: Any) -> NeuronModel:
    """The registered model whose parameter record `p` is (exact type: no subclass stands in)."""
    for model in _MODELS.values():
        if type(p) is model.parameters:
            return model
    raise TypeError(f"{type(p).__name__} is no registered neuron model's parameter record; models: {', '.join(_MODELS)}")


def check_neuron_options(name: str, options: Mapping[str, Any]) -> Any:
    """The parameter record of model `name` with `options` (fields of its record, e.g. {"reset": "zero"}) set: each
    key a field, each value of the field's type (a Literal field one of its values) and the record valid; else a
    ValueError in one line naming the key, the value and what is valid. Checks what `--neuron-option` gives."""
    import typing

    model = get_neuron(name)
    record = model.parameters
    names = record.__dataclass_fields__
    try:
        hints = typing.get_type_hints(record)
    except Exception:  # an annotation that does not resolve: judge by the default's type
        hints = {}
    for key, value in options.items():
        if key not in names:
            raise ValueError(f"neuron '{name}' has no parameter {key!r}; valid: {', '.join(names)}")
        hint, default = hints.get(key), names[key].default
        choices = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else ()
        shown = json.dumps(value, default=str)
        if choices and value not in choices:
            raise ValueError(f"neuron '{name}' parameter {key} must be one of {', '.join(map(str, choices))}, got {shown}")
        kind = type(default)
        if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int)):
            raise ValueError(f"neuron '{name}' parameter {key} must be {'a number' if kind is float else 'an integer'}, "
                             f"got {shown} (default {default})")
        if kind in (int, float) and not math.isfinite(value):
            raise ValueError(f"neuron '{name}' parameter {key} must be finite, got {shown} (default {default})")
        if kind is str and not isinstance(value, str):
            raise ValueError(f"neuron '{name}' parameter {key} must be a name, got {shown} (default {default})")
    try:
        return record(**options)
    except (TypeError, ValueError) as error:
        raise ValueError(f"neuron '{name}': {' '.join(str(error).split())}") from None


def check_reset_and_surrogate(reset: str, surrogate: str) -> None:
    """The shared validation of the template records' reset and surrogate fields."""
    from neuromem.neurons.surrogates import get_surrogate

    if reset not in ("subtract", "zero"):
        raise ValueError(f"reset must be 'subtract' or 'zero', got {reset!r}")
    get_surrogate(surrogate)


def check_unit_interval(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")


def nir_node_of(p: Any, shape: tuple[int, ...], dt: float):
    """The NIR node of neurons with record `p` (one per element of `shape`); a NeuromemError naming what
    NIR cannot express for a model without an NIR form or with parameters outside it."""
    from neuromem.errors import NeuromemError

    model = neuron_of(p)
    if model.to_nir is None:
        raise NeuromemError(f"NIR export refused: neuron '{model.name}' has no NIR form: {model.nir_refusal}; "
                            f"neurons NIR can express: {', '.join(n for n, m in _MODELS.items() if m.to_nir)}")
    return model.to_nir(p, tuple(int(d) for d in shape), float(dt))


def nir_neuron_from(node, dt: float, exact: bool = False) -> NIRNeuron | None:
    """The registered model reading NIR neuron `node` (None: no model reads it). `exact`: honour the
    neuromem metadata a node may carry (the model it was written from: Loihi fixed point, a subtract
    reset), else read it as NIR states it; a model named there is asked first, then every model in turn."""
    from neuromem.neurons.models.nir_forms import written_by

    named = written_by(node) if exact else None
    order = ([_MODELS[named]] if named in _MODELS else []) + [m for n, m in _MODELS.items() if n != named]
    for model in order:
        if model.from_nir is not None:
            found = model.from_nir(node, float(dt), exact)
            if found is not None:
                return found
    return None


__all__ = [
    "MembraneDynamics", "NeuronModel", "NIRNeuron", "register_neuron", "neuron_names", "get_neuron", "neuron_of",
    "nir_node_of", "nir_neuron_from", "check_neuron_options",
]

# registration: one import per model file
from neuromem.neurons.models import lif, cuba, alif, loihi, se_adlif  # noqa: E402,F401
