"""NIR interchange: every spiking cell NIR can express to a graph, graphs back to neuromem, and the graph run in
every simulator that installs here.

- `export`: `write_nir(chain or cell, path)` (the `--to nir` target's writer), `to_nir`, `load_for_nir`,
  `spiking_chain` (a float cell's chain), `SenseChains` / `sense_graph` (a cell of two senses: one graph, an
  Input and an Output per sense), the synapse type -> node table; the neuron nodes come from each neuron
  model's registry entry (`neuromem.neurons.models`: `to_nir` / `from_nir`)
- `importer`: `read_nir`, `from_nir` (one function per NIR node, the walk left to nirtorch)
- `compare`: `nir_agreement` (`--compare N`: the cell, neuromem's run of the graph, Norse, snnTorch, Sinabs,
  Rockpool, Spyx), `SIMULATORS`
- `cell`: `import_cell` (`neuromem import`: a NIR graph as a neuromem cell a data set evaluates)
"""

from neuromem.export.nir.export import (  # noqa: F401
    NIR_DT, SYNAPSES, SenseChains, SpikingChain, build_graph, caveats_of, graph_senses, load_for_nir, refuse_delays,
    sense_graph, spiking_chain, to_nir, write_nir,
)
from neuromem.export.nir.importer import (  # noqa: F401
    SUPPORTED_NODES, NIRNetwork, TimeMajorFlatten, from_nir, read_nir,
)
from neuromem.export.nir.compare import (  # noqa: F401
    SIMULATORS, NIRAgreement, SensesAgreement, SimulatorAgreement, nir_agreement, run_norse, run_snntorch, snntorch_refusal,
)
