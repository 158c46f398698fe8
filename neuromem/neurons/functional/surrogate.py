"""The spike non-linearity with a surrogate gradient.

Forward is the Heaviside step H(x) = [x > 0] (as in snnTorch); backward uses the
named surrogate's smooth stand-in (`neuromem.neurons.surrogates`, one file each)
so that gradients flow through spikes.
"""

from __future__ import annotations

import torch

from neuromem.neurons.surrogates import get_surrogate, surrogate_names

__all__ = ["heaviside_surrogate", "surrogate_grad", "surrogate_names"]


def surrogate_grad(name: str, x: torch.Tensor, slope: float, inplace: bool = False) -> torch.Tensor:
    """d spike / dx under the named surrogate; `inplace` overwrites x (which must not need grad)."""
    return get_surrogate(name).torch_grad(x, slope, inplace)


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
    get_surrogate(name)  # an unknown name fails here, in the forward pass, not in backward
    return _HeavisideSurrogate.apply(x, name, slope)
