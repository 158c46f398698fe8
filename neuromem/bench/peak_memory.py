"""Peak memory of training one benchmark network, measured alone in this process.

Run as `python -m neuromem.bench.peak_memory '<json spec>'` (the benchmark does
this once per configuration and framework, so no framework's allocations
linger in another's measurement). Prints one JSON line:
    rss_before_mb  resident set size after building network, optimizer and batch and
                   one tiny warm-up step (T=2, batch 2)
    peak_mb        peak resident set size while the training steps ran
    extra_mb       peak_mb - rss_before_mb: what the training steps added on top
On Linux the peak counter (VmHWM) is reset just before the steps (writing "5"
to /proc/self/clear_refs), so import-time peaks do not hide the training peak.
Elsewhere getrusage's lifetime peak is used and the result says so. On CUDA
the numbers are torch.cuda's allocated bytes instead of RSS.
"""

from __future__ import annotations

import json
import resource
import sys

import torch

from neuromem.bench.networks import BenchConfig


def _status_mb(field: str) -> float | None:
    try:  # Linux
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError):
        return None
    return None


def _reset_peak() -> bool:
    try:  # Linux >= 4.0: reset VmHWM to the current RSS
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def lifetime_peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def measure(config: BenchConfig, framework: str, device: torch.device, steps: int = 3) -> dict:
    from neuromem.bench.core_speed import train_step
    from neuromem.bench.data_source import random_batches
    from neuromem.bench.networks import build_network

    network = build_network(framework, config).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    # one tiny warm-up step (T=2, batch 2): lazy one-time costs (numba loading its compiled
    # kernels, lazily built modules, the optimizer's state) are not the memory a training step
    # needs, but a full-size warm-up would leave its freed buffers cached and hide the peak
    tiny_inputs, tiny_labels = next(random_batches(config.scaled(steps=2, batch=2), device))
    train_step(framework, network, optimizer, tiny_inputs, tiny_labels)
    del tiny_inputs, tiny_labels
    inputs, labels = next(random_batches(config, device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device) / 2**20
        for _ in range(steps):
            train_step(framework, network, optimizer, inputs, labels)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        return {"rss_before_mb": before, "peak_mb": peak, "extra_mb": peak - before, "unit": "cuda allocated"}
    resettable = _reset_peak()
    before = _status_mb("VmRSS") if resettable else None
    if before is None:
        before = lifetime_peak_rss_mb()
    for _ in range(steps):
        train_step(framework, network, optimizer, inputs, labels)
    peak = _status_mb("VmHWM") if resettable else None
    result = {"unit": "rss"}
    if peak is None:
        peak = lifetime_peak_rss_mb()
        result["note"] = "peak counter not resettable: lifetime peak, extra_mb is a lower bound"
    result.update(rss_before_mb=before, peak_mb=peak, extra_mb=max(peak - before, 0.0))
    return result


def main() -> None:
    spec = json.loads(sys.argv[1])
    raw = spec["config"]
    raw["input_shape"] = tuple(raw["input_shape"])
    config = BenchConfig(**raw)
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    print(json.dumps(measure(config, spec["framework"], torch.device(spec["device"]), int(spec["steps"]))))


if __name__ == "__main__":
    main()
