"""Triangle (piecewise-linear) surrogate (Esser et al. 2016, Bellec et al. 2018's pseudo-derivative):
max(0, 1 - slope |x|), peak 1 at the threshold, zero beyond |x| = 1 / slope."""

from __future__ import annotations

from neuromem.neurons.surrogates import Surrogate, register_surrogate


def _torch_grad(x, slope, inplace=False):
    if not inplace:
        return (1.0 - slope * x.abs()).clamp_(min=0.0)
    return x.abs_().mul_(-slope).add_(1.0).clamp_(min=0.0)


def _compiled_grad(x, constants):
    one, zero, slope = constants
    d = one - slope * abs(x)
    return d if d > zero else zero


register_surrogate(Surrogate("triangle", _torch_grad, _compiled_grad, lambda slope: (1.0, 0.0, slope)))
