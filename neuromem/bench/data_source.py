"""Batches for the benchmark: random spikes at the specified density, and neuromem's data layer.

Two sources with two jobs:
- `spec_source`: Bernoulli spikes at the configuration's `density`, the input
  the issue's goals are defined on (the fast core exploits input sparsity, so
  step time depends on density);
- `open_source`: neuromem's data layer (random spikes if it is unavailable,
  and then it says why). Its per-batch fetch time is the reported data time:
  the wall time to get one time-major batch onto the device, i.e. pull it from
  the loader (which gathers the cached uint8 counts straight into time-major
  float storage) and move it. Its batches are also what the steps run on for
  the `data` input kind (a sensitivity check at the data's own density).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import torch

from neuromem.bench.networks import BenchConfig


@dataclass
class BatchSource:
    description: str  # what the batches are, for the report
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]]
    setup_seconds: float = 0.0  # opening the data set (cache hit or build)
    from_layer: bool = False  # batches come from neuromem's data layer
    unavailable: str | None = None  # why the data layer is not used, when it is not

    def next_timed(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        start = time.perf_counter()
        inputs, labels = next(self.batches)
        return inputs, labels, time.perf_counter() - start


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_batches(config: BenchConfig, device: torch.device, seed: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Bernoulli spikes at `config.density`, generated on the device (what a fully cached loader costs at best)."""
    generator = torch.Generator(device=device).manual_seed(seed)
    shape = (config.steps, config.batch, *config.input_shape)
    while True:
        inputs = (torch.rand(shape, generator=generator, device=device) < config.density).float()
        labels = torch.randint(0, config.classes, (config.batch,), generator=generator, device=device)
        _synchronize(device)
        yield inputs, labels


def spec_source(config: BenchConfig, device: torch.device, seed: int = 0) -> BatchSource:
    """The configuration as specified: Bernoulli spikes at `config.density`."""
    return BatchSource(f"random Bernoulli spikes at the specified density {config.density:.0%}",
                       random_batches(config, device, seed))


def _layer_batches(dataset, config: BenchConfig, device: torch.device, seed: int):
    generator = torch.Generator().manual_seed(seed)
    while True:  # cycle epochs: the benchmark may want more batches than one epoch holds
        for inputs, labels in dataset.batches(config.batch, shuffle=True, generator=generator, drop_last=True, time_major=True):
            inputs = inputs.transpose(0, 1).contiguous().to(device, non_blocking=True)  # contiguous already: no copy
            labels = labels.to(device, non_blocking=True)
            _synchronize(device)
            yield inputs, labels


def open_source(config: BenchConfig, device: torch.device, data: str = "auto", seed: int = 0) -> BatchSource:
    """data: "random", "auto" (the data layer's default root, random if unavailable) or a data root path."""
    if data == "random":
        return BatchSource(f"random spikes, density {config.density:.0%} (--data random: data layer not used)",
                           random_batches(config, device, seed), unavailable="--data random: the data layer is not used")
    start = time.perf_counter()
    try:
        from neuromem.data.dataset import load_split
        from neuromem.data.roots import resolve_data_root

        root, source = resolve_data_root(None if data == "auto" else data)
        dataset = load_split(config.kind, root, "train", time_bins=config.steps)
        if len(dataset) < config.batch:
            raise ValueError(f"only {len(dataset)} samples, fewer than one batch of {config.batch}")
    except Exception as error:  # any failure of the optional data path falls back, and says why
        if data not in ("auto",):
            raise
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:120]
        return BatchSource(
            f"random spikes, density {config.density:.0%} (data layer unavailable: {reason})",
            random_batches(config, device, seed), unavailable=f"data layer unavailable: {reason}",
        )
    setup = time.perf_counter() - start
    cache = "cache hit" if dataset.meta.get("cache_hit") else "cache built"
    description = f"neuromem.data {source} {config.kind} train, {len(dataset)} samples ({cache})"
    return BatchSource(description, _layer_batches(dataset, config, device, seed), setup, from_layer=True)
