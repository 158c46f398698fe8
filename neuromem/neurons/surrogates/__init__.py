"""Surrogate gradients of the spike non-linearity, one file each, behind one registry.

The forward pass of every spike is the Heaviside step H(x) = [x > 0] (x = v - threshold);
a surrogate is only the smooth stand-in for dH/dx in the backward pass. Each entry
carries that derivative twice, once per execution path:

- `torch_grad(x, slope, inplace)`: on tensors (the reference step, the torch loop);
  `inplace` may overwrite x (the fast core's one-allocation-less form);
- `compiled_grad(x, constants)`: on one scalar, compiled by numba into the fast CPU
  kernels (inlined: each (neuron model, surrogate) pair gets its own kernels, so the
  choice is made at compile time). `constants(slope)` gives the floats it needs; the
  kernels hand them over in the membranes' dtype (a float64 literal inside would widen
  float32 arithmetic), so write it with those constants and no float literals.

Adding a surrogate is one file here plus one registration line (the import at the end
of this file):

    # neuromem/neurons/surrogates/triangle.py
    from neuromem.neurons.surrogates import Surrogate, register_surrogate

    def _torch_grad(x, slope, inplace=False): ...
    def _compiled_grad(x, constants): ...
    register_surrogate(Surrogate("triangle", _torch_grad, _compiled_grad, lambda slope: (1.0, 0.0, slope)))

Everything that takes a surrogate name (the parameter records, the kernels, the tests)
reads this registry; an unknown name is refused with the list of registered ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Surrogate:
    name: str
    torch_grad: Callable[..., torch.Tensor]  # (x, slope, inplace=False) -> dH/dx
    compiled_grad: Callable  # (x, constants) -> dH/dx on one scalar (plain Python; numba compiles it)
    constants: Callable[[float], tuple[float, ...]]  # slope -> the constants compiled_grad reads


_SURROGATES: dict[str, Surrogate] = {}


def register_surrogate(surrogate: Surrogate) -> Surrogate:
    if surrogate.name in _SURROGATES:
        raise ValueError(f"surrogate {surrogate.name!r} is already registered")
    _SURROGATES[surrogate.name] = surrogate
    return surrogate


def surrogate_names() -> tuple[str, ...]:
    return tuple(_SURROGATES)


def get_surrogate(name: str) -> Surrogate:
    try:
        return _SURROGATES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown surrogate {name!r}; valid: {', '.join(_SURROGATES)}") from None


# registration: one import per surrogate file
from neuromem.neurons.surrogates import atan, fast_sigmoid, triangle  # noqa: E402,F401
