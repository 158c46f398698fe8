"""Run exported networks on Lava and compare them with the quantized torch model.

`verify_on_lava` is the check `neuromem hw verify` reports: the torch model
rebuilt from the .h5 and Lava run the same samples; every layer's spike
raster must match at every neuron and step, and the final readout voltages
must be equal; accuracy is computed from both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from neuromem.errors import NeuromemError
from neuromem.export.lava import model_from_lava
from neuromem.export.model import LoihiNetwork, binary_time_major
from neuromem.export.resources import LoihiResources, loihi_resources
from neuromem.hardware_bridge import LavaRun, run_on_lava


@dataclass
class VerifyReport:
    samples: int
    timesteps: int
    spikes_per_layer: list[int]  # torch spike counts
    mismatches_per_layer: list[int]  # neuron-steps where Lava and torch differ
    voltages_equal: bool
    torch_accuracy: float | None
    lava_accuracy: float | None
    lava_seconds: float
    resources: LoihiResources | None = None
    predictions_equal: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def mismatches(self) -> int:
        return int(sum(self.mismatches_per_layer))

    @property
    def identical(self) -> bool:
        return self.mismatches == 0 and self.voltages_equal

    def lines(self) -> list[str]:
        out = [
            f"{self.samples} samples x {self.timesteps} steps on Lava Loihi2SimCfg(select_tag='fixed_pt') "
            f"({self.lava_seconds:.1f} s wall, {self.lava_seconds / max(self.samples, 1):.3f} s per sample"
            + (f", {self.extra['workers']} worker(s) x {self.extra['parallel']} samples side by side" if "workers" in self.extra else "")
            + ")",
        ]
        if "torch_seconds" in self.extra:
            out.append(f"torch (quantized model, 1 process): {self.extra['torch_seconds']:.1f} s wall, "
                       f"{self.extra['torch_seconds'] / max(self.samples, 1):.4f} s per sample")
        for i, (spikes, bad) in enumerate(zip(self.spikes_per_layer, self.mismatches_per_layer)):
            out.append(f"  layer {i}: {spikes} spikes, {bad} mismatching neuron-steps")
        out.append(f"spike rasters identical: {'yes' if self.mismatches == 0 else 'NO'}; "
                   f"readout voltages identical: {'yes' if self.voltages_equal else 'NO'}")
        if self.torch_accuracy is not None:
            out.append(f"accuracy: torch (quantized) {100 * self.torch_accuracy:.2f}%, Lava {100 * self.lava_accuracy:.2f}%")
        return out


def torch_rasters(
    model: LoihiNetwork, inputs: np.ndarray, batch_size: int = 64
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Per-layer spikes (S, T, N) uint8, readout voltages (S, T, C) and final ones (S, C), int64, of the torch model."""
    model.eval()
    layers: list[list[np.ndarray]] = []
    finals, traces = [], []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            spikes, voltages = model.run(binary_time_major(inputs[start : start + batch_size]))
            if not layers:
                layers = [[] for _ in spikes]
            for store, s in zip(layers, spikes):
                s = s.transpose(0, 1)
                store.append(s.reshape(*s.shape[:2], -1).numpy().astype(np.uint8))
            finals.append(voltages[-1].numpy().astype(np.int64))
            traces.append(voltages.transpose(0, 1).numpy().astype(np.int64))
    return [np.concatenate(s) for s in layers], np.concatenate(traces), np.concatenate(finals)


def compare(model: LoihiNetwork, lava: LavaRun, inputs: np.ndarray, labels: np.ndarray | None) -> VerifyReport:
    torch_spikes, torch_trace, torch_final = torch_rasters(model, inputs)
    if len(torch_spikes) != len(lava.spikes):
        raise NeuromemError(f"Lava returned {len(lava.spikes)} layers, the model has {len(torch_spikes)}")
    mismatches = [int((a != b).sum()) for a, b in zip(torch_spikes, lava.spikes)]
    torch_pred, lava_pred = torch_final.argmax(1), lava.predictions()
    shapes = chain_shapes(model)
    return VerifyReport(
        samples=int(inputs.shape[0]),
        timesteps=int(inputs.shape[1]),
        spikes_per_layer=[int(s.sum()) for s in torch_spikes],
        mismatches_per_layer=mismatches,
        voltages_equal=bool(
            np.array_equal(torch_final, lava.final_voltage)
            and (lava.voltages is None or np.array_equal(torch_trace, lava.voltages))
        ),
        torch_accuracy=None if labels is None else float((torch_pred == labels).mean()),
        lava_accuracy=None if labels is None else float((lava_pred == labels).mean()),
        lava_seconds=lava.seconds,
        resources=loihi_resources(shapes, inputs, lava.spikes),
        predictions_equal=bool(np.array_equal(torch_pred, lava_pred)),
    )


def chain_shapes(model: LoihiNetwork) -> list[tuple]:
    """Per layer (in, out, recurrent[, synapses, mean fan-out]) for `loihi_resources`."""
    shapes = []
    for layer in model.layers:
        if hasattr(layer, "in_features"):
            shapes.append((layer.in_features, layer.out_features, layer.recurrent is not None))
            continue
        weight = layer.synapse.integer_weight().detach()
        channels, height, width = layer.in_shape
        probe = torch.ones(1, channels, height, width, dtype=torch.float64)
        fanout_map = torch.nn.functional.conv_transpose2d(
            torch.ones(1, weight.shape[0], *layer.out_hw, dtype=torch.float64), (weight != 0).to(torch.float64),
            stride=layer.synapse.stride, padding=layer.synapse.padding, output_padding=_output_padding(layer))
        synapses = int(fanout_map.sum())
        inputs = int(probe.numel())
        shapes.append((inputs, weight.shape[0] * layer.out_hw[0] * layer.out_hw[1], False, synapses, synapses / inputs))
    return shapes


def _output_padding(layer) -> tuple[int, int]:
    """conv_transpose2d's output_padding that gives back the conv's input size."""
    stride, padding, k = layer.synapse.stride[0], layer.synapse.padding[0], layer.synapse.kernel_size[0]
    return tuple(size - ((out - 1) * stride - 2 * padding + k) for size, out in zip(layer.in_shape[1:], layer.out_hw))


def run_lava_split(h5_path: str | Path, inputs: np.ndarray, record_voltages: bool, workers: int, parallel: int) -> LavaRun:
    """`run_on_lava` over `workers` Lava processes at once (each a contiguous share of the samples,
    `parallel` of them side by side per run); the results in sample order, seconds = wall time of all."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(int(workers), len(inputs)))
    shares = [share for share in np.array_split(np.arange(len(inputs)), workers) if len(share)]
    started = time.perf_counter()
    with ThreadPoolExecutor(len(shares)) as pool:
        runs = list(pool.map(lambda rows: run_on_lava(h5_path, inputs[rows], record_voltages=record_voltages,
                                                      parallel=parallel), shares))
    seconds = time.perf_counter() - started
    return LavaRun(
        spikes=[np.concatenate([r.spikes[i] for r in runs]) for i in range(len(runs[0].spikes))],
        final_voltage=np.concatenate([r.final_voltage for r in runs]),
        voltages=None if runs[0].voltages is None else np.concatenate([r.voltages for r in runs]),
        seconds=seconds,
    )


def verify_on_lava(
    h5_path: str | Path, inputs: np.ndarray, labels: np.ndarray | None = None, record_voltages: bool = False,
    workers: int = 1, parallel: int = 1,
) -> VerifyReport:
    """Lava vs the torch model rebuilt from the same file, on (S, T, *input_shape) inputs; with
    `record_voltages` the readout voltage must also match at every step, not only the last.
    `workers` Lava processes at once, each running `parallel` samples side by side."""
    import time

    model = model_from_lava(h5_path)
    inputs = np.asarray(inputs)
    expected = tuple(model.config.input_shape)
    if inputs.ndim != 2 + len(expected) or tuple(inputs.shape[2:]) != expected:
        raise NeuromemError(
            f"inputs of shape {inputs.shape} do not fit {h5_path}: it expects (samples, T, {', '.join(map(str, expected))})"
        )
    lava = run_lava_split(h5_path, inputs, record_voltages, workers, parallel)
    started = time.perf_counter()
    report = compare(model, lava, inputs, None if labels is None else np.asarray(labels))
    report.extra["torch_seconds"] = time.perf_counter() - started
    report.extra["workers"], report.extra["parallel"] = int(workers), int(parallel)
    return report


def chip_metrics(network, dataset: str, input_shape, inputs: torch.Tensor) -> dict:
    """Loihi 2 costs of a trained cell from what its chain does on `inputs` (batch-major counts): spikes,
    synaptic events and neuron updates per layer, priced with the LOIHI energy profile, and cores from
    the per-core limits. {} for a cell that is not a chain of Loihi layers (nothing to price)."""
    from neuromem.export.model import chip_network

    try:
        chain = chip_network(network, dataset, input_shape)
    except NeuromemError:
        return {}
    with torch.no_grad():
        x = binary_time_major(inputs)
        spikes, _ = chain.run(x)
    rasters = [s.transpose(0, 1).reshape(s.shape[1], s.shape[0], -1).numpy() for s in spikes]
    resources = loihi_resources(chain_shapes(chain), x.transpose(0, 1).numpy(), rasters)
    return {
        "loihi_energy_pj_per_sample": resources.energy_uj_per_inference * 1e6,
        "loihi_cores": resources.cores,
        "loihi_neurons": resources.neurons,
        "loihi_synapses": resources.synapses,
        "loihi_synaptic_ops_per_sample": resources.synaptic_ops_per_inference,
        "loihi_spikes_per_sample": resources.spikes_per_inference,
        "loihi_energy_assumptions": [f"{k}: {v}" for k, v in resources.sources.items()],
    }
