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
            f"({self.lava_seconds:.1f} s simulated)",
        ]
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
                store.append(s.transpose(0, 1).numpy().astype(np.uint8))
            finals.append(voltages[-1].numpy().astype(np.int64))
            traces.append(voltages.transpose(0, 1).numpy().astype(np.int64))
    return [np.concatenate(s) for s in layers], np.concatenate(traces), np.concatenate(finals)


def compare(model: LoihiNetwork, lava: LavaRun, inputs: np.ndarray, labels: np.ndarray | None) -> VerifyReport:
    torch_spikes, torch_trace, torch_final = torch_rasters(model, inputs)
    if len(torch_spikes) != len(lava.spikes):
        raise NeuromemError(f"Lava returned {len(lava.spikes)} layers, the model has {len(torch_spikes)}")
    mismatches = [int((a != b).sum()) for a, b in zip(torch_spikes, lava.spikes)]
    torch_pred, lava_pred = torch_final.argmax(1), lava.predictions()
    shapes = [(l.in_features, l.out_features, l.recurrent is not None) for l in model.layers]
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


def verify_on_lava(
    h5_path: str | Path, inputs: np.ndarray, labels: np.ndarray | None = None, record_voltages: bool = False
) -> VerifyReport:
    """Lava vs the torch model rebuilt from the same file, on (S, T, channels) inputs; with
    `record_voltages` the readout voltage must also match at every step, not only the last."""
    model = model_from_lava(h5_path)
    inputs = np.asarray(inputs)
    if inputs.ndim != 3 or inputs.shape[2] != model.config.input_size:
        raise NeuromemError(
            f"inputs of shape {inputs.shape} do not fit {h5_path}: it expects (samples, T, {model.config.input_size})"
        )
    lava = run_on_lava(h5_path, inputs, record_voltages=record_voltages)
    return compare(model, lava, inputs, None if labels is None else np.asarray(labels))
