"""snnTorch's `surrogate.atan(alpha)`: d/dx [arctan(pi/2 alpha x) / pi] = (alpha/2) / (1 + (pi/2 alpha x)^2)."""

from __future__ import annotations

import math

from neuromem.neurons.surrogates import Surrogate, register_surrogate


def _torch_grad(x, slope, inplace=False):
    if not inplace:
        return (slope / 2) / (1 + (math.pi / 2 * slope * x).pow(2))
    return x.mul_(math.pi / 2 * slope).square_().add_(1.0).reciprocal_().mul_(slope / 2)


def _compiled_grad(x, constants):
    one, half_slope, scale = constants
    u = scale * x
    return half_slope / (one + u * u)


register_surrogate(Surrogate("atan", _torch_grad, _compiled_grad, lambda slope: (1.0, slope * 0.5, math.pi / 2 * slope)))
