"""Run exported networks on Lava (Python 3.10 environment) through files and a subprocess.

lava-nc 0.10.0 needs Python 3.10 and numpy < 2, so it never enters this
process: `run_on_lava` writes the input spikes to an .npz, runs
`<lava python> -m neuromem_lava run net.h5 in.npz out.npz`, and reads the result.
The Lava interpreter is NEUROMEM_LAVA_PYTHON if set, else `.venv-lava/bin/python`
in the repository that holds this package, else in the current directory.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuromem.errors import NeuromemError

LAVA_PYTHON_ENV = "NEUROMEM_LAVA_PYTHON"
MISSING_MESSAGE = "Lava environment missing: run `make lava` (creates .venv-lava with Python 3.10 and lava-nc 0.10.0)"


def _candidates() -> list[Path]:
    repo = Path(__file__).resolve().parent.parent
    return [repo / ".venv-lava" / "bin" / "python", Path.cwd() / ".venv-lava" / "bin" / "python"]


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
    parallel: int = 1,
) -> LavaRun:
    """Run `inputs` (samples, T, *input_shape), counts or binary, through the network in `h5_path` on
    Lava's Loihi2SimCfg(select_tag='fixed_pt'); counts are clipped to single spikes. `parallel`
    samples run at once, in side-by-side copies of the network (block-diagonal synapses)."""
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
        command += ["--parallel", str(int(parallel))]
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent / "hardware"))
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
            raise NeuromemError(f"Lava run failed ({python}): {last}")
        with np.load(out_path) as out:
            count = len([k for k in out.files if k.startswith("spikes_")])
            return LavaRun(
                spikes=[out[f"spikes_{i}"] for i in range(count)],
                final_voltage=out["final_voltage"],
                voltages=out["voltages"] if "voltages" in out.files else None,
                seconds=float(out["seconds"]),
            )
