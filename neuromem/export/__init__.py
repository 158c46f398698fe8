"""Deployment: Loihi 2 via Lava (netx-layout HDF5, bit-exact fixed point) and NIR interchange.

- `model`: `LoihiNetwork`, `build_loihi_shd_model`, `train_loihi_model`, checkpoints
- `lava`: `export_lava(model, path)`, `read_lava(path)`, `model_from_lava(path)`
- `nir`: `to_nir`, `write_nir`, `read_nir`, `from_nir` (dense and convolutional chains); `run_norse`, `run_snntorch`,
  `nir_agreement` (the graph in Norse / snnTorch against neuromem's float run and the fixed-point chain)
- `hardware`: `verify_on_lava` (Lava vs torch: rasters, voltages, accuracy)
- `resources`: `loihi_resources` (neurons, synapses, cores, energy per inference, cited)
- `cli`: `register(app)` adds `neuromem export` and `neuromem hw {train,run,verify}`
"""
