"""Deployment: Loihi 2 via Lava (netx-layout HDF5, bit-exact fixed point) and NIR interchange.

- `targets`: the export-target registry (`neuromem export --to NAME`): lava, nir; a new target is its own
  file plus one `register_export_target` line there
- `model`: `LoihiNetwork`, `build_loihi_shd_model`, `train_loihi_model`, checkpoints
- `lava`: `export_lava(model, path)`, `read_lava(path)`, `model_from_lava(path)`
- `netx`: `read_netx(path)`, the network-file reader neuromem and its Lava backend (`hardware/`) share
  (numpy and h5py only)
- `nir/`: NIR both ways for every cell NIR can express (float lif/cuba cells and Loihi chains): `export.py`
  (`write_nir`, `load_for_nir`), `importer.py` (`from_nir`: one function per node, walked by nirtorch),
  `compare.py` (`nir_agreement`: the cell, neuromem's run of the graph, Norse, snnTorch, Sinabs, Rockpool,
  Spyx), `cell.py` and `cli.py` (`neuromem import`: a graph as a cell)
- `hardware`: the Lava bridge (`run_on_lava`: the backend in its own Python 3.10 environment, through files and
  a subprocess), `verify_on_lava` (Lava vs torch: rasters, voltages, accuracy), `chip_metrics` (a cell's Loihi 2
  costs)
- `resources`: `loihi_resources` (neurons, synapses, cores, energy per inference, cited)
- `cli`: `register(app)` adds `neuromem export` and `neuromem hw {run,verify}`
"""
