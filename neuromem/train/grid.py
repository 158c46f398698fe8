"""Run a grid of cells on one machine (in process or in worker processes) or on a Ray cluster.

Workers only compute: each cell is `execute_cell(config, data_root)`, a pure
function returning plain data. The driver alone writes the store, one cell at
a time as results arrive, so the store never sees concurrent writers.
"""

from __future__ import annotations

import multiprocessing
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Sequence

from neuromem.errors import NeuromemError
from neuromem.train.config import CellConfig
from neuromem.train.store import ResultStore
from neuromem.train.trainer import ProgressSink, run_cell

EXECUTORS = ("local", "ray")


def execute_cell(config_data: dict[str, Any], data_root: str, progress: ProgressSink | None = None) -> dict[str, Any]:
    """Worker entry point: plain data in, plain data out (picklable for processes and Ray).
    `progress` only works in the driver's own process."""
    config = CellConfig.from_dict(config_data)
    try:
        outcome = run_cell(config, Path(data_root), progress)
    except NeuromemError:
        raise
    except Exception as error:  # a failing cell is recorded, the grid goes on
        failure = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        return {"config": config_data, "status": "failed", "metrics": failure}
    return {
        "config": config_data,
        "status": "ok",
        "metrics": outcome.metrics,
        "representations": outcome.representations,
        "state": outcome.state,
    }


def _record(store: ResultStore, result: dict[str, Any]) -> CellConfig:
    config = CellConfig.from_dict(result["config"])
    store.record(config, result["metrics"], result["status"], result.get("representations"), result.get("state"))
    return config


def run_grid(
    configs: Sequence[CellConfig],
    data_root: Path,
    store: ResultStore,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    cpus_per_cell: float = 1.0,
    progress: ProgressSink | None = None,
    on_cell_done: Callable[[CellConfig, dict[str, Any]], None] = lambda config, result: None,
) -> None:
    if executor not in EXECUTORS:
        raise NeuromemError(f"--executor {executor!r} is not known; valid: {', '.join(EXECUTORS)}")
    if executor == "ray":
        _run_ray(configs, data_root, store, address, cpus_per_cell, on_cell_done)
    elif workers <= 1:
        for config in configs:
            result = execute_cell(config.to_dict(), str(data_root), progress)
            on_cell_done(_record(store, result), result)
    else:
        # spawn: fresh interpreters, no inherited torch thread pools or locks
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(execute_cell, c.to_dict(), str(data_root)) for c in configs]
            for future in as_completed(futures):
                result = future.result()
                on_cell_done(_record(store, result), result)


def _run_ray(configs, data_root, store, address, cpus_per_cell, on_cell_done) -> None:
    try:
        import ray
    except ImportError:
        raise NeuromemError("--executor ray needs Ray: pip install 'neuromem[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise NeuromemError(f"--address {address!r}: could not connect to a Ray cluster ({error})") from None
    try:
        remote_cell = ray.remote(num_cpus=cpus_per_cell)(execute_cell)
        # the data root must be readable at the same path on every node of the cluster
        pending = [remote_cell.remote(c.to_dict(), str(data_root)) for c in configs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            result = ray.get(done[0])
            on_cell_done(_record(store, result), result)
    finally:
        if started_here:
            ray.shutdown()
