"""Memory modules: one file each, one registry, one interface (`MemoryModule`), each module's options
one frozen record (`MemoryOptions`) registered with it.

Importing this package registers every module shipped with neuromem.
"""

from neuromem.memory.base import (
    MemoryModule,
    MemoryOptions,
    MemoryOutput,
    build_memory,
    memory_info,
    memory_names,
    register_memory,
)
from neuromem.memory import hopfield  # noqa: F401  (registers "hopfield")
from neuromem.memory import hgrn  # noqa: F401  (registers "hgrn")
from neuromem.memory import scl  # noqa: F401  (registers "scl")
from neuromem.memory import cmhan  # noqa: F401  (registers "cmhan")
from neuromem.memory import ttt  # noqa: F401  (registers "ttt")
from neuromem.memory import hopfield_spiking  # noqa: F401  (registers "hopfield-spiking")
from neuromem.memory import scl_spiking  # noqa: F401  (registers "scl-spiking")
from neuromem.memory import hgrn_spiking  # noqa: F401  (registers "hgrn-spiking")
from neuromem.memory import none  # noqa: F401  (registers "none", unlisted: imported NIR graphs' passthrough)

__all__ = ["MemoryModule", "MemoryOptions", "MemoryOutput", "build_memory", "memory_info", "memory_names", "register_memory"]
