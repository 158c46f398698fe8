"""Run a grid of cells on one machine (in process or in worker processes) or on a Ray cluster.

Workers only compute: each cell is `execute_cell(config, data_root)`, a pure
function returning plain data. The driver alone writes the store, one cell at
a time as results arrive, each under the cell's claim, so two runs sharing an
output folder never train or save the same cell at once.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Sequence

from neuromem.errors import NeuromemError
from neuromem.train.config import CellConfig
from neuromem.train.provenance import current_provenance
from neuromem.study.store import ResultStore
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
    broken = _non_finite(outcome.state)
    if broken:  # a diverged cell's numbers mean nothing: failed, never an ok row
        failure = {"error": f"its weights became non-finite during training (NaN or inf in {', '.join(broken[:3])}"
                            f"{', ...' if len(broken) > 3 else ''}); lower --learning-rate"}
        return {"config": config_data, "status": "failed", "metrics": failure}
    return {
        "config": config_data,
        "status": "ok",
        "metrics": {**outcome.metrics, "provenance": current_provenance(config.memory)},  # what the cell was computed with
        "representations": outcome.representations,
        "state": outcome.state,
    }


def _non_finite(state: Any, prefix: str = "") -> list[str]:
    """Names of the tensors in a (nested) state dict that hold NaN or inf."""
    import torch

    if isinstance(state, torch.Tensor):
        return [prefix or "weights"] if state.is_floating_point() and not bool(torch.isfinite(state).all()) else []
    if isinstance(state, dict):
        return [name for key, value in state.items() for name in _non_finite(value, f"{prefix}.{key}" if prefix else str(key))]
    return []


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
    on_cell_elsewhere: Callable[[CellConfig, str], None] = lambda config, note: None,
) -> None:
    """Run `configs`, each under its claim in the store: a cell another live run has claimed is waited
    for, and only trained here if that run did not finish it (`on_cell_elsewhere` hears about both)."""
    if executor not in EXECUTORS:
        raise NeuromemError(f"--executor {executor!r} is not known; valid: {', '.join(EXECUTORS)}")
    store.remove_orphans()
    since = store.opened_at  # an ok row newer than this was written by another run on the same --out
    claims: dict[str, Any] = {}

    def take(config: CellConfig, wait: bool) -> bool:
        claim = store.claim(config.cell_id, wait=wait)
        if claim is None:
            return False
        if store.finished_since(config.cell_id, since):
            claim.release()
            on_cell_elsewhere(config, "finished by another run on this --out")
        else:
            claims[config.cell_id] = claim
        return True

    def done(result: dict[str, Any]) -> None:
        config = _record(store, result)
        claim = claims.pop(config.cell_id, None)
        if claim is not None:
            claim.release()
        on_cell_done(config, result)

    busy: list[CellConfig] = []
    try:
        if executor == "local" and workers <= 1:
            for config in configs:  # claimed one at a time, so concurrent runs share the work
                if not take(config, wait=False):
                    busy.append(config)
                elif config.cell_id in claims:
                    done(execute_cell(config.to_dict(), str(data_root), progress))
        else:
            busy = [c for c in configs if not take(c, wait=False)]
            mine = [c for c in configs if c.cell_id in claims]
            _run_batch(mine, data_root, executor, workers, address, cpus_per_cell, done)
        for config in busy:  # claimed by another live run: wait for it, take over what it did not finish
            on_cell_elsewhere(config, f"claimed by another run (pid {store.claim_owner(config.cell_id)}); waiting for it")
            take(config, wait=True)
            if config.cell_id in claims:
                done(execute_cell(config.to_dict(), str(data_root), progress))
    finally:
        for claim in claims.values():
            claim.release()


@contextlib.contextmanager
def _workers_ignore_sigint():
    """SIGINT ignored while the pool starts its workers (submit spawns them), so they are born ignoring it: an
    interrupt to the whole process group is this process's to handle (it ends the workers), and a worker still
    importing torch when it comes would otherwise print a traceback of its own."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_batch(configs, data_root, executor, workers, address, cpus_per_cell, done) -> None:
    if not configs:
        return
    if executor == "ray":
        _run_ray(configs, data_root, address, cpus_per_cell, done)
        return
    # spawn: fresh interpreters, no inherited torch thread pools or locks
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        with _workers_ignore_sigint():
            futures = [pool.submit(execute_cell, c.to_dict(), str(data_root)) for c in configs]
        for future in as_completed(futures):
            done(future.result())
    except BaseException:  # interrupted (SIGINT, or SIGTERM to this process alone): stop, never wait for the grid
        workers_now = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in workers_now:  # their cells are saved by this process only: nothing of theirs is lost
            if process.is_alive():
                process.terminate()
        for process in workers_now:
            process.join(timeout=10)
        raise
    pool.shutdown()


RAY_CONNECT_TIMEOUT_S = 30


def _probe_ray_address(address: str) -> None:
    """A plain TCP connection to a host:port address first, within 30 s: Ray itself retries for minutes."""
    import socket

    text = address.split("://", 1)[-1]
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return  # "auto", or a form Ray itself explains
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError, OverflowError) as error:
        reason = "timed out after 30 s" if isinstance(error, socket.timeout) else (getattr(error, "strerror", None) or str(error))
        raise NeuromemError(f"--address {address!r}: could not connect to a Ray cluster ({reason}); start one with "
                            "`ray start --head` and give its address, or leave --address out to start Ray here") from None


def _run_ray(configs, data_root, address, cpus_per_cell, done) -> None:
    try:
        import ray
    except ImportError:
        raise NeuromemError("--executor ray needs Ray: pip install 'neuromem[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            _probe_ray_address(address)
        os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", str(RAY_CONNECT_TIMEOUT_S))
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise NeuromemError(f"--address {address!r}: could not connect to a Ray cluster ({error})") from None
    try:
        cpus = float(ray.cluster_resources().get("CPU", 0))
        if cpus_per_cell > cpus:
            raise NeuromemError(f"--cpus-per-cell {cpus_per_cell:g} is more than the Ray cluster has ({cpus:g} CPUs); "
                                f"no cell could ever start: give at most {cpus:g}")
        remote_cell = ray.remote(num_cpus=cpus_per_cell)(execute_cell)
        # the data root must be readable at the same path on every node of the cluster
        pending = [remote_cell.remote(c.to_dict(), str(data_root)) for c in configs]
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            done(ray.get(finished[0]))
    finally:
        if started_here:
            ray.shutdown()
