"""Deployment: Loihi 2 via Lava (netx-layout HDF5, bit-exact fixed point) and NIR interchange.

- `targets`: the export-target registry (`neuromem export --to NAME`): lava, nir; a new target is its own
  file plus one `register_export_target` line there
- `model`: `LoihiNetwork`, `build_loihi_shd_model`, `train_loihi_model`, checkpoints
- `lava`: `export_lava(model, path)`, `read_lava(path)`, `model_from_lava(path)`
- `netx`: `read_netx(path)`, the network-file reader neuromem and its Lava backend (`hardware/`) share
  (numpy and h5py only)
- `nir`: `to_nir`, `write_nir`, `read_nir`, `from_nir` (dense and convolutional chains); `run_norse`, `run_snntorch`,
  `nir_agreement` (the graph in Norse / snnTorch against neuromem's float run and the fixed-point chain)
- `hardware`: the Lava bridge (`run_on_lava`: the backend in its own Python 3.10 environment, through files and
  a subprocess), `verify_on_lava` (Lava vs torch: rasters, voltages, accuracy), `chip_metrics` (a cell's Loihi 2
  costs)
- `resources`: `loihi_resources` (neurons, synapses, cores, energy per inference, cited)
- `cli`: `register(app)` adds `neuromem export` and `neuromem hw {run,verify}`
"""
