"""SuperSpike's fast sigmoid (Zenke & Ganguli 2018): 1 / (slope |x| + 1)^2."""

from __future__ import annotations

from neuromem.neurons.surrogates import Surrogate, register_surrogate


def _torch_grad(x, slope, inplace=False):
    if not inplace:
        return 1.0 / (slope * x.abs() + 1.0).pow(2)
    return x.abs_().mul_(slope).add_(1.0).square_().reciprocal_()


def _compiled_grad(x, constants):
    one, slope = constants
    d = slope * abs(x) + one
    return one / (d * d)


register_surrogate(Surrogate("fast_sigmoid", _torch_grad, _compiled_grad, lambda slope: (1.0, slope)))
