"""Memory layout of frame tensors: channels-last storage back to the logical order, fast.

The sparse convolution writes channels-last (N, H, W, C) storage, which
elementwise neurons and the next sparse convolution read as it lies. Only a
flatten into (..., C*H*W) features needs the logical order; torch's generic
permuted copy costs ~2.5 ns an element here (plus first-touch page faults),
a per-frame transpose in numba into a huge-page buffer a fraction of that.
"""

from __future__ import annotations

import torch

from neuromem.neurons.functional import buffers

try:
    import numba as _numba
except ImportError:  # pragma: no cover - numba comes with tonic
    _numba = None

if _numba is not None:

    @_numba.njit(cache=True, nogil=True)
    def _transpose_frames(source, target):
        # source (N, A, B) -> target (N, B, A); one frame (a few KB) at a time stays in L1
        frames, rows, columns = source.shape
        for n in range(frames):
            for j in range(columns):
                for i in range(rows):
                    target[n, j, i] = source[n, i, j]


def is_channels_last(frames: torch.Tensor) -> bool:
    """(..., C, H, W) logical, (..., H, W, C) in memory, and not also contiguous (C or H*W of 1)."""
    if frames.dim() < 3 or frames.is_contiguous():
        return False
    order = tuple(range(frames.dim() - 3)) + (frames.dim() - 2, frames.dim() - 1, frames.dim() - 3)
    return frames.permute(order).is_contiguous()


def _transpose(source: torch.Tensor, rows: int, columns: int) -> torch.Tensor:
    """(N, rows, columns) contiguous storage -> (N, columns, rows) contiguous storage, same values."""
    source = source.contiguous()
    target = buffers.empty((source.numel() // (rows * columns), columns, rows), source.dtype)
    if _numba is not None:
        _transpose_frames(source.numpy().reshape(-1, rows, columns), target.numpy())
    else:
        target.copy_(source.reshape(-1, rows, columns).transpose(1, 2))
    return target


class _ChannelsFirst(torch.autograd.Function):
    @staticmethod
    def forward(ctx, frames):
        *outer, channels, height, width = frames.shape
        ctx.shape = frames.shape
        storage = frames.permute(*range(len(outer)), len(outer) + 1, len(outer) + 2, len(outer))  # (..., H, W, C)
        return _transpose(storage, height * width, channels).reshape(frames.shape)

    @staticmethod
    def backward(ctx, grad):
        *outer, channels, height, width = ctx.shape
        grad_storage = _transpose(grad, channels, height * width).reshape(*outer, height, width, channels)
        return grad_storage.permute(*range(len(outer)), len(outer) + 2, len(outer), len(outer) + 1)


def channels_first(frames: torch.Tensor) -> torch.Tensor:
    """The same (..., C, H, W) values in contiguous memory; the gradient goes back channels-last.
    Channels-last CPU tensors are transposed frame by frame; anything else is `.contiguous()`."""
    if frames.device.type != "cpu" or not is_channels_last(frames):
        return frames.contiguous()
    return _ChannelsFirst.apply(frames)


def flatten_features(frames: torch.Tensor, start_dim: int = 2) -> torch.Tensor:
    """`frames.flatten(start_dim)` in (C, H, W) order, fast for channels-last frames."""
    return channels_first(frames).flatten(start_dim)
