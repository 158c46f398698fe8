"""Surrogate gradients for the spike non-linearity.

Forward is the Heaviside step H(x) = [x > 0] (as in snnTorch); backward uses a
smooth stand-in so that gradients flow through spikes.
"""

from __future__ import annotations

import math

import torch

SURROGATES = ("atan", "fast_sigmoid")


def atan_grad(x: torch.Tensor, slope: float, inplace: bool = False) -> torch.Tensor:
    # snnTorch's surrogate.atan(alpha): d/dx [1/pi * arctan(pi/2 * alpha * x)]
    if not inplace:
        return (slope / 2) / (1 + (math.pi / 2 * slope * x).pow(2))
    # same value, computed in x's buffer (one allocation less per pass; used by the fast core)
    return x.mul_(math.pi / 2 * slope).square_().add_(1.0).reciprocal_().mul_(slope / 2)


def fast_sigmoid_grad(x: torch.Tensor, slope: float, inplace: bool = False) -> torch.Tensor:
    # SuperSpike (Zenke & Ganguli 2018): 1 / (slope*|x| + 1)^2
    if not inplace:
        return 1.0 / (slope * x.abs() + 1.0).pow(2)
    return x.abs_().mul_(slope).add_(1.0).square_().reciprocal_()


_GRADS = {"atan": atan_grad, "fast_sigmoid": fast_sigmoid_grad}


def surrogate_grad(name: str, x: torch.Tensor, slope: float, inplace: bool = False) -> torch.Tensor:
    """d spike / dx under the named surrogate; `inplace` overwrites x (which must not need grad)."""
    try:
        return _GRADS[name](x, slope, inplace)
    except KeyError:
        raise ValueError(f"unknown surrogate {name!r}; valid: {', '.join(SURROGATES)}") from None


class _HeavisideSurrogate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, name: str, slope: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.name, ctx.slope = name, slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_output * surrogate_grad(ctx.name, x, ctx.slope), None, None


def heaviside_surrogate(x: torch.Tensor, name: str = "atan", slope: float = 2.0) -> torch.Tensor:
    """Spike = [x > 0], with the named surrogate gradient in the backward pass."""
    return _HeavisideSurrogate.apply(x, name, slope)
