"""The CPU-specific tier of the fast core: one setting for every machine-specific trick.

`NEUROMEM_CPU_TIER`, read once when neuromem is imported:

- `tuned` (the default): the tricks are on. They are
  - AVX-512 compress-store for the non-zero scan where the CPU has it (`functional/nonzero.py`),
  - hand-written 8-lane vector code for the convolution scatter's row updates (`functional/simd.py`),
  - the non-zero side channel: spikes a fused kernel wrote keep the list of their non-zeros for
    the next layer (`remember_nonzeros` in `functional/sparse.py`),
  - the buffer pool for large step buffers (`functional/buffers.py`),
  - `THP_MEM_ALLOC_ENABLE=1` for torch's CPU allocator (set unless the user set it).
- `portable`: none of them. Plain numba loops that LLVM vectorises for whatever CPU it compiles
  for, fresh allocations, every spike tensor scanned anew. The sparse synapses and the fused
  kernels themselves stay: they are algorithms, not tricks.

Kept because the benchmark measured a gain (benchmarks/README.md, "CPU tier"); two former tricks
were dropped for measuring none: an 8-lane table scan and BLAS called from inside numba.
Both tiers compute the same spikes; sums in a different order may differ in the last bit of a
gradient. The kernels of each tier are cached on disk apart (`functional/jit.py`), so
switching costs one compile the first time only. The benchmark runs both and reports both.
"""

from __future__ import annotations

import os

VARIABLE = "NEUROMEM_CPU_TIER"
TIERS = ("tuned", "portable")


def requested() -> str:
    """The tier the environment asks for; the one-line error names the variable and the choices."""
    value = os.environ.get(VARIABLE, "").strip().lower() or TIERS[0]
    if value not in TIERS:
        from neuromem.errors import NeuromemError

        raise NeuromemError(f"{VARIABLE}={os.environ[VARIABLE]!r} is not a CPU tier; choose one of: {', '.join(TIERS)}")
    return value


def _at_import() -> str:
    try:
        return requested()
    except Exception:  # importing neuromem must not fail: the fast core's modules call `check()`
        return TIERS[0]


TIER = _at_import()
TUNED = TIER == "tuned"


def check() -> str:
    """Raise the one-line error if the variable holds no valid tier; else the tier in force."""
    requested()
    return TIER
