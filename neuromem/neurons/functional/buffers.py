"""Large uninitialised CPU buffers on transparent huge pages.

numpy asks the kernel for huge pages on large allocations (madvise); torch's
allocator does not (unless THP_MEM_ALLOC_ENABLE=1 is set). Kernels that write
every element of a fresh (T, ...) buffer pay for its first touch: ~1.5 us per
4 KiB page here, ~13 ms for a 35 MB buffer, against ~4 ms on 2 MiB pages.
"""

from __future__ import annotations

import numpy as np
import torch


def empty(shape: tuple[int, ...] | torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised contiguous CPU tensor whose memory numpy allocated (huge pages when large)."""
    return torch.from_numpy(np.empty(tuple(shape), dtype=np.dtype(str(dtype).removeprefix("torch."))))


def zeros(shape: tuple[int, ...] | torch.Size, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.zeros(tuple(shape), dtype=np.dtype(str(dtype).removeprefix("torch."))))
