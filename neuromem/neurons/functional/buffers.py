"""Large uninitialised CPU buffers, reused from step to step.

A training step writes the same (T, ...) buffers every time: spikes, membranes,
currents, gradients. Fresh large allocations come straight from the kernel
(glibc maps anything above 32 MB anew and unmaps it on free), and their first
touch costs page faults that zero the memory: ~1.5 us per 4 KiB page, ~4 ms
for a 35 MB buffer even on 2 MiB pages (numpy asks for huge pages on large
allocations; torch's allocator only with THP_MEM_ALLOC_ENABLE=1). The N-MNIST
benchmark step faulted ~4,500 times per step, ~30 ms of a 176 ms step.

So large buffers come from a small pool, like torch's CUDA caching allocator:
a block is free again once the array handed out over it is gone (the tensor
and every view of it: a weakref finalizer gives it back). Blocks
are matched by exact size (a training loop asks for the same sizes every
step); free blocks beyond `POOL_FREE_LIMIT_BYTES` are released, least recently
used first, so a change of batch size does not keep the old sizes alive.
Blocks from 4 MiB up are pooled. At first only blocks above glibc's largest
mmap threshold (32 MiB) were, trusting its heap to reuse the rest, and pooling
smaller ones then measured slower (N-MNIST step 131 vs 124 ms); with today's
kernels the 20 MB buffers (second convolution, dense input gradient) still
faulted ~1,700 pages a step, and pooling from 4 MiB cut that to ~120: N-MNIST
~95 -> ~89 ms in interleaved A/B runs, SHD unchanged, peak memory of the
N-MNIST step 146 MB (snnTorch 273). Below 4 MiB glibc's heap serves well. The portable CPU tier
(`neuromem/cpu_tier.py`) does without the pool.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

import numpy as np
import torch

from neuromem import cpu_tier
POOLED_MIN_BYTES = 4 << 20  # smaller: glibc's heap reuses them
POOL_FREE_LIMIT_BYTES = 512 << 20  # free pooled bytes kept for reuse at most


ALIGNMENT = 64  # bytes: a cache line; kernels stream whole 32-byte vectors to rows that start on one


def _aligned_bytes(nbytes: int) -> np.ndarray:
    """nbytes of uninitialised memory starting on an `ALIGNMENT` boundary (numpy guarantees 16)."""
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + nbytes]


class _Block:
    __slots__ = ("memory", "in_use")

    def __init__(self, nbytes: int) -> None:
        self.memory = _aligned_bytes(nbytes)
        self.in_use = False


_pool: "OrderedDict[int, list[_Block]]" = OrderedDict()  # size in bytes -> blocks, least recently used first
_lock = threading.Lock()


def _give_back(block: _Block) -> None:
    block.in_use = False


def _release_free_blocks(limit: int) -> None:
    free_bytes = sum(block.memory.nbytes for blocks in _pool.values() for block in blocks if not block.in_use)
    for size in list(_pool):
        if free_bytes <= limit:
            return
        kept = []
        for block in _pool[size]:
            if free_bytes > limit and not block.in_use:
                free_bytes -= block.memory.nbytes
            else:
                kept.append(block)
        if kept:
            _pool[size] = kept
        else:
            del _pool[size]


def _take(nbytes: int) -> _Block:
    with _lock:
        blocks = _pool.pop(nbytes, [])  # back in below as the most recently used size
        block = next((block for block in blocks if not block.in_use), None)
        if block is None:
            _release_free_blocks(POOL_FREE_LIMIT_BYTES)
            block = _Block(nbytes)
            blocks.append(block)
        _pool[nbytes] = blocks
        block.in_use = True
        return block


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    return np.dtype(str(dtype).removeprefix("torch."))


def empty(shape: tuple[int, ...] | torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised contiguous CPU tensor starting on an `ALIGNMENT` boundary; large ones reuse a
    pooled block nothing refers to any more (the portable CPU tier: torch's own allocation)."""
    if not cpu_tier.TUNED:
        return torch.empty(tuple(shape), dtype=dtype)
    shape, np_dtype = tuple(shape), _numpy_dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize
    if nbytes < POOLED_MIN_BYTES:
        return torch.from_numpy(_aligned_bytes(nbytes).view(np_dtype).reshape(shape))
    block = _take(nbytes)
    array = block.memory.view(np_dtype).reshape(shape)
    # the tensor, and every view of it, keeps `array` alive: once it is gone the block is free
    weakref.finalize(array, _give_back, block)
    return torch.from_numpy(array)


def zeros(shape: tuple[int, ...] | torch.Size, dtype: torch.dtype) -> torch.Tensor:
    tensor = empty(shape, dtype)
    tensor.zero_()
    return tensor


def pooled_bytes() -> tuple[int, int]:
    """(bytes held by the pool, of which free for reuse)."""
    with _lock:
        blocks = [block for blocks in _pool.values() for block in blocks]
        return sum(b.memory.nbytes for b in blocks), sum(b.memory.nbytes for b in blocks if not b.in_use)


def clear() -> None:
    """Release every free pooled block (blocks still in use stay until their tensors are gone)."""
    with _lock:
        _release_free_blocks(0)
