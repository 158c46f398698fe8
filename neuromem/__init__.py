"""neuromem: memory in spiking neural networks across senses."""

import os as _os

# Whole-sequence tensors are large ((T, batch, ...): tens of MB); on 4 KiB pages their first
# touch costs ~1.5 us a page on the machines we measured (~13 ms for 35 MB), on 2 MiB pages a
# third of that. torch's CPU allocator asks for transparent huge pages only with this variable,
# read once at its first allocation: it takes effect when neuromem is imported before torch
# allocates (the CLI, the benchmark). Set THP_MEM_ALLOC_ENABLE=0 to opt out; the portable CPU
# tier (NEUROMEM_CPU_TIER=portable, see neuromem/cpu_tier.py) leaves it to the user.
from neuromem import cpu_tier as _cpu_tier

if _cpu_tier.TUNED:
    _os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__version__ = "0.1.0"
