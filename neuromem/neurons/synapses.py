"""Synapse modules: `nn.Linear` / `nn.Conv2d` whose fast path sums only the active inputs.

They are the torch modules (same parameters, state-dict keys, hooks, NIR
mapping); only `forward` changes, and only on the fast path (CPU, numba):
see `functional/sparse.py`. With `reference_core()` they are torch's layers.
"""

from __future__ import annotations

import torch
from torch import nn

from neuromem.neurons.functional.lif import fast_path_enabled
from neuromem.neurons.functional.sparse import sparse_input_conv2d, sparse_input_linear


class SparseInputLinear(nn.Linear):
    """Also takes frames (rows, C, H, W) with C*H*W = in_features, flattened in (C, H, W) order: a
    convolution's output goes straight in (channels-last, as the sparse convolution writes it, read as it lies).

    The weight (out, in) is stored transposed (column-major, the same values): the sparse sums read
    rows of W^T, one per active input, and the weight gradient is summed into them; stored
    row-major, each step transposed it twice (N-MNIST's 2592 -> 256 layer: ~2.5 ms a step).
    State dicts, `.to()`, optimizers and NIR export see an ordinary (out, in) tensor."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(in_features, out_features, bias, device, dtype)
        self.weight = nn.Parameter(self.weight.detach().t().contiguous().t())

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        frames = inputs.dim() == 4 and inputs[0].numel() == self.in_features
        if fast_path_enabled() and (frames or inputs.dim() == 2):
            return sparse_input_linear(inputs, self.weight, self.bias)
        return super().forward(inputs.flatten(1) if frames else inputs)


class SparseInputConv2d(nn.Conv2d):
    def forward(self, inputs: torch.Tensor, chunk_frames: int | None = None) -> torch.Tensor:
        """`chunk_frames`: run a dense fallback this many frames at a time (its workspace grows with them)."""
        if fast_path_enabled() and inputs.dim() == 4 and self._plain():
            return sparse_input_conv2d(
                inputs, self.weight, self.bias, self.stride[0], self.padding[0], chunk_frames=chunk_frames
            )
        if chunk_frames is not None and inputs.shape[0] > chunk_frames:
            return torch.cat([super(SparseInputConv2d, self).forward(chunk) for chunk in inputs.split(chunk_frames)])
        return super().forward(inputs)

    def _plain(self) -> bool:
        """Square stride and padding, zero padding, no dilation or groups: what the sparse kernel covers."""
        return (
            self.groups == 1
            and self.dilation == (1, 1)
            and self.padding_mode == "zeros"
            and not isinstance(self.padding, str)
            and self.stride[0] == self.stride[1]
            and self.padding[0] == self.padding[1]
        )


class TiedTransposedLinear(nn.Linear):
    """A linear synapse whose weight is the transpose of another linear synapse's (tied: no weight of its
    own), optionally of its first `rows` rows only, followed by columns of its own (`extra`,
    (source.in_features, k), trained) for k further inputs; a bias of its own if asked for. The forward
    pass is the subclass's (float or Loihi fixed point)."""

    def __init__(self, source: nn.Linear, rows: int | None = None, extra: torch.Tensor | None = None,
                 bias: bool = False) -> None:
        super().__init__(1, 1, bias=False)
        del self.weight
        object.__setattr__(self, "_source", source)  # not a submodule: the source is registered where it lives
        self.rows = source.out_features if rows is None else int(rows)
        self.extra = None if extra is None else nn.Parameter(extra.detach().clone())
        self.in_features = self.rows + (0 if extra is None else int(extra.shape[1]))
        self.out_features = source.in_features
        self.bias = nn.Parameter(torch.zeros(source.in_features)) if bias else None

    @property
    def weight(self) -> torch.Tensor:
        tied = self._source.weight[: self.rows].t()
        return tied if self.extra is None else torch.cat([tied, self.extra], dim=1)
