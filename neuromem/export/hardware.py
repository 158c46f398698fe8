"""Run exported networks on Lava, in its own environment, and compare them with the quantized torch model.

lava-nc 0.10.0 needs Python 3.10 and numpy < 2, so it never enters this process: `run_on_lava` writes the
input spikes to an .npz, runs `<lava python> -m neuromem_lava run net.h5 in.npz out.npz` (the backend in
`hardware/`), and reads the result. The Lava interpreter is NEUROMEM_LAVA_PYTHON if set, else
`.venv-lava/bin/python` in the repository that holds this package, else in the current directory.

`verify_on_lava` is the check `neuromem hw verify` reports: the torch model rebuilt from the .h5 and Lava
run the same samples; every layer's spike raster must match at every neuron and step, and the final readout
voltages must be equal; accuracy is computed from both. `chip_metrics` prices a trained cell's chain.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from neuromem.errors import NeuromemError
from neuromem.export.lava import model_from_lava
from neuromem.export.model import LoihiNetwork, binary_time_major
from neuromem.export.resources import LoihiResources, loihi_resources

REPO = Path(__file__).resolve().parent.parent.parent  # the source tree: hardware/ and .venv-lava beside neuromem/
LAVA_PYTHON_ENV = "NEUROMEM_LAVA_PYTHON"
MISSING_MESSAGE = "Lava environment missing: run `make lava` (creates .venv-lava with Python 3.10 and lava-nc 0.10.0)"


def _candidates() -> list[Path]:
    return [REPO / ".venv-lava" / "bin" / "python", Path.cwd() / ".venv-lava" / "bin" / "python"]


def find_lava_python() -> Path | None:
    configured = os.environ.get(LAVA_PYTHON_ENV)
    if configured:
        path = Path(configured)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    for path in _candidates():
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def lava_python() -> Path:
    path = find_lava_python()
    if path is None:
        configured = os.environ.get(LAVA_PYTHON_ENV)
        where = f" ({LAVA_PYTHON_ENV}={configured} is not an executable)" if configured else ""
        raise NeuromemError(MISSING_MESSAGE + where)
    return path


def lava_available() -> bool:
    return find_lava_python() is not None


@dataclass
class LavaRun:
    spikes: list[np.ndarray]  # per layer (samples, T, neurons) uint8
    final_voltage: np.ndarray  # (samples, outputs) int64
    voltages: np.ndarray | None  # (samples, T, outputs) when recorded
    seconds: float  # in the Lava worker: building, compiling and running the processes, reading the recordings

    def predictions(self) -> np.ndarray:
        """argmax of the final readout voltage, the exported decision rule."""
        return self.final_voltage.argmax(axis=1)


def run_on_lava(
    h5_path: str | Path, inputs: np.ndarray, record_voltages: bool = False, timeout: float | None = 3600,
    parallel: int = 1, sense: str | None = None,
) -> LavaRun:
    """Run `inputs` (samples, T, *input_shape), counts or binary, through the network in `h5_path` on
    Lava's Loihi2SimCfg(select_tag='fixed_pt'); counts are clipped to single spikes. `parallel`
    samples run at once, in side-by-side copies of the network (block-diagonal synapses). `sense`: that
    sense's chain of a file of several (a joint or parallel cell)."""
    python = lava_python()
    h5_path = Path(h5_path).resolve()
    if not h5_path.is_file():
        raise NeuromemError(f"network file {h5_path} does not exist")
    inputs = np.asarray(inputs)
    if inputs.ndim < 3:
        raise NeuromemError(f"inputs must be (samples, T, *input_shape), got shape {inputs.shape}")
    with tempfile.TemporaryDirectory(prefix="neuromem-lava-") as tmp:
        in_path, out_path = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        np.savez(in_path, spikes=(inputs > 0).astype(np.uint8))
        command = [str(python), "-m", "neuromem_lava", "run", str(h5_path), str(in_path), str(out_path)]
        if record_voltages:
            command.append("--record-voltages")
        command += ["--parallel", str(int(parallel))] + (["--sense", sense] if sense is not None else [])
        # the backend (hardware/) and neuromem's numpy-only netx reader (neuromem/export/netx.py) it shares
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "hardware"), str(REPO)]))
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise NeuromemError(f"Lava run of {h5_path} took longer than {timeout} s; try fewer samples") from None
        if done.returncode != 0:
            lines = [l for l in done.stderr.strip().splitlines() if l.strip()]
            reported = [l for l in lines if l.startswith("neuromem_lava: error:")]
            if reported:
                raise NeuromemError(reported[-1].removeprefix("neuromem_lava: error: "))
            last = lines[-1] if lines else f"exit code {done.returncode}"
            chosen = (f"${LAVA_PYTHON_ENV}={python}" if os.environ.get(LAVA_PYTHON_ENV)
                      else f"{python}; set ${LAVA_PYTHON_ENV} to a Python with lava-nc, or run `make lava`")
            raise NeuromemError(f"Lava run failed ({chosen}): {last}")
        with np.load(out_path) as out:
            count = len([k for k in out.files if k.startswith("spikes_")])
            return LavaRun(
                spikes=[out[f"spikes_{i}"] for i in range(count)],
                final_voltage=out["final_voltage"],
                voltages=out["voltages"] if "voltages" in out.files else None,
                seconds=float(out["seconds"]),
            )


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
            out.append(f"torch (quantized model, 1 process, {self.extra.get('torch_device', 'cpu')}): "
                       f"{self.extra['torch_seconds']:.1f} s wall, "
                       f"{self.extra['torch_seconds'] / max(self.samples, 1):.4f} s per sample")
        for i, (spikes, bad) in enumerate(zip(self.spikes_per_layer, self.mismatches_per_layer)):
            out.append(f"  layer {i}: {spikes} spikes, {bad} mismatching neuron-steps")
        out.append(f"spike rasters identical: {'yes' if self.mismatches == 0 else 'NO'}; "
                   f"readout voltages identical: {'yes' if self.voltages_equal else 'NO'}")
        if self.torch_accuracy is not None:
            out.append(f"accuracy: torch (quantized) {100 * self.torch_accuracy:.2f}%, Lava {100 * self.lava_accuracy:.2f}%")
        return out


def torch_rasters(
    model: LoihiNetwork, inputs: np.ndarray, batch_size: int = 64, device: torch.device | str = "cpu"
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Per-layer spikes (S, T, N) uint8, readout voltages (S, T, C) and final ones (S, C), int64, of the torch model
    run on `device` (each batch moved there, its rasters back to the CPU)."""
    model.to(device).eval()
    layers: list[list[np.ndarray]] = []
    finals, traces = [], []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            spikes, voltages = model.run(binary_time_major(inputs[start : start + batch_size]).to(device))
            spikes, voltages = [s.cpu() for s in spikes], voltages.cpu()
            if not layers:
                layers = [[] for _ in spikes]
            for store, s in zip(layers, spikes):
                s = s.transpose(0, 1)
                store.append(s.reshape(*s.shape[:2], -1).numpy().astype(np.uint8))
            finals.append(voltages[-1].numpy().astype(np.int64))
            traces.append(voltages.transpose(0, 1).numpy().astype(np.int64))
    return [np.concatenate(s) for s in layers], np.concatenate(traces), np.concatenate(finals)


def compare(model: LoihiNetwork, lava: LavaRun, inputs: np.ndarray, labels: np.ndarray | None,
            device: torch.device | str = "cpu") -> VerifyReport:
    torch_spikes, torch_trace, torch_final = torch_rasters(model, inputs, device=device)
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


def run_lava_split(h5_path: str | Path, inputs: np.ndarray, record_voltages: bool, workers: int, parallel: int,
                   sense: str | None = None) -> LavaRun:
    """`run_on_lava` over `workers` Lava processes at once (each a contiguous share of the samples,
    `parallel` of them side by side per run); the results in sample order, seconds = wall time of all."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(int(workers), len(inputs)))
    shares = [share for share in np.array_split(np.arange(len(inputs)), workers) if len(share)]
    started = time.perf_counter()
    with ThreadPoolExecutor(len(shares)) as pool:
        runs = list(pool.map(lambda rows: run_on_lava(h5_path, inputs[rows], record_voltages=record_voltages,
                                                      parallel=parallel, sense=sense), shares))
    seconds = time.perf_counter() - started
    return LavaRun(
        spikes=[np.concatenate([r.spikes[i] for r in runs]) for i in range(len(runs[0].spikes))],
        final_voltage=np.concatenate([r.final_voltage for r in runs]),
        voltages=None if runs[0].voltages is None else np.concatenate([r.voltages for r in runs]),
        seconds=seconds,
    )


def verify_on_lava(
    h5_path: str | Path, inputs: np.ndarray, labels: np.ndarray | None = None, record_voltages: bool = False,
    workers: int = 1, parallel: int = 1, sense: str | None = None, device: torch.device | str = "cpu",
) -> VerifyReport:
    """Lava vs the torch model rebuilt from the same file, on (S, T, *input_shape) inputs; with
    `record_voltages` the readout voltage must also match at every step, not only the last.
    `workers` Lava processes at once, each running `parallel` samples side by side; `sense`: that sense's
    chain of a file of several; `device`: where the torch model runs."""
    import time

    model = model_from_lava(h5_path, sense)
    inputs = np.asarray(inputs)
    expected = tuple(model.config.input_shape)
    if inputs.ndim != 2 + len(expected) or tuple(inputs.shape[2:]) != expected:
        raise NeuromemError(
            f"inputs of shape {inputs.shape} do not fit {h5_path}: it expects (samples, T, {', '.join(map(str, expected))})"
        )
    lava = run_lava_split(h5_path, inputs, record_voltages, workers, parallel, sense)
    started = time.perf_counter()
    report = compare(model, lava, inputs, None if labels is None else np.asarray(labels), device)
    report.extra["torch_seconds"], report.extra["torch_device"] = time.perf_counter() - started, str(device)
    report.extra["workers"], report.extra["parallel"] = int(workers), int(parallel)
    return report


def chip_metrics(network, dataset: str, input_shape, inputs: torch.Tensor) -> dict:
    """Loihi costs of a trained cell from what its chain does on `inputs` (batch-major counts): spikes,
    synaptic events and neuron updates per layer, priced with the LOIHI energy profile (Loihi 1's measured
    per-operation energies; Loihi 2's are not published), and cores from Loihi 2's per-core limits. {} for a
    cell that is not a chain of Loihi layers (nothing to price)."""
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
        "loihi_neuron_updates_per_sample": resources.neuron_updates_per_inference,
        "loihi_spikes_per_sample": resources.spikes_per_inference,
        "loihi_energy_assumptions": [f"{k}: {v}" for k, v in resources.sources.items()],
    }
