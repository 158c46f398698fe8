"""Bounds before work: what a configuration would allocate, estimated without allocating it (modules built
on torch's meta device), against a memory limit; refused in one line that says the estimate and the limit.

The limit is $NEUROMEM_MEMORY_LIMIT (bytes, or with a K/M/G/T suffix), else half of this machine's memory.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from neuromem.errors import NeuromemError

LIMIT_ENV = "NEUROMEM_MEMORY_LIMIT"
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
# counts of passes the memory modules make (settling steps, inner gradient steps, feedback rounds, stacked
# layers, unrolled chunks, readout windows): each is one more pass, so their product bounds the work
ITERATION_SUFFIXES = ("steps", "iterations", "layers", "chunks", "windows")
MAX_ITERATIONS = 1000


def parse_size(text: str, name: str, allow_zero: bool = False, example: str = "500M, 8G") -> int:
    """A byte count from an environment variable: a number, optionally with K, M, G or T (powers of 1024)."""
    text = text.strip()
    number, unit = text.rstrip("bBiI"), ""
    if number and number[-1].lower() in _UNITS:
        number, unit = number[:-1], number[-1].lower()
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        value = -1
    if not ((value >= 0 if allow_zero else value > 0) and value != float("inf")):
        raise NeuromemError(f"${name}={text!r} is not a size; valid: a number of bytes {'>=' if allow_zero else '>'} 0, "
                            f"optionally with K, M, G or T (e.g. {example})")
    return int(value)


def memory_limit() -> tuple[int, str]:
    """(bytes, where the limit comes from)."""
    text = os.environ.get(LIMIT_ENV, "").strip()
    if text:
        return parse_size(text, LIMIT_ENV), f"${LIMIT_ENV}"
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 1024**3
    return total // 2, f"half this machine's memory; set ${LIMIT_ENV} to change it"


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(size) < 1024 or unit == "PB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PB"


def meta_bytes(build: Callable[[], Any]) -> int | None:
    """Bytes of the parameters and buffers of the module `build()` makes, built on the meta device (nothing is
    allocated); None when it cannot be built there (the caller's own checks then run as before)."""
    import torch

    try:
        with torch.device("meta"):
            module = build()
    except Exception:  # noqa: BLE001 - a construction error is reported by the real build
        return None
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def iteration_option(key: str) -> bool:
    return any(key == suffix or key.endswith("_" + suffix) for suffix in ITERATION_SUFFIXES)


def probe_settings(options: dict[str, Any]) -> dict[str, Any]:
    """The options an up-front probe runs with: pass counts that change no shape (steps, iterations, layers of the
    same shape) at their smallest, so that a probe stays instant; sizes as given (their memory is bounded first)."""
    def smallest(key: str, value: Any) -> Any:
        if (any(key == s or key.endswith("_" + s) for s in ("steps", "iterations", "layers"))
                and isinstance(value, int) and not isinstance(value, bool) and value > 2):
            return 2
        return value

    return {key: smallest(key, value) for key, value in options.items()}


def check_iterations(memory: str, options: dict[str, Any]) -> None:
    for key, value in options.items():
        if (iteration_option(key) and isinstance(value, int) and not isinstance(value, bool)
                and not 1 <= value <= MAX_ITERATIONS):
            raise NeuromemError(f"--memory-option for {memory!r}: {key} must be an integer in 1..{MAX_ITERATIONS}, "
                                f"got {value} (each is one more pass of the memory per time bin)")


def check_module_memory(memory: str, options: dict[str, Any], build: Callable[[], Any]) -> None:
    """A memory module's own parameters, four times over (weights, gradients, Adam's two moments)."""
    size = meta_bytes(build)
    limit, source = memory_limit()
    if size is not None and 4 * size > limit:
        shown = " ".join(f"{k}={v}" for k, v in options.items())
        raise NeuromemError(f"--memory-option for {memory!r}: {shown} needs an estimated {human(4 * size)} to train "
                            f"({human(size)} of parameters, with gradients and optimizer state); the limit is "
                            f"{human(limit)} ({source})")


def training_estimate(config) -> int | None:
    """Bytes a spiking-task cell needs to train, roughly: parameters, gradients and Adam's moments, and the
    activations of one batch over every time bin. None for tasks trained elsewhere (trimodal)."""
    from neuromem.data.registry import get_dataset
    from neuromem.models.network import build_network
    from neuromem.train.tasks import TASKS

    task = TASKS.get(config.modality)
    if task is None:
        return None
    specs = [get_dataset(name).spec for name in task.datasets]
    size = meta_bytes(lambda: build_network(
        {s.name: tuple(s.input_shape) for s in specs}, {s.name: s.num_classes for s in specs}, config.memory,
        hidden=config.hidden, neuron=config.neuron, memory_options=dict(config.memory_options),
        front_options=dict(config.front_options), neuron_params=dict(config.neuron_options)))
    if size is None:
        return None
    activations = 0
    batch = min(config.batch_size, config.max_train_samples or config.batch_size)  # a batch holds at most the samples
    for spec in specs:
        bins = config.time_bins or spec.time_bins
        inputs = 1
        for dim in spec.input_shape:
            inputs *= int(dim)
        activations += batch * bins * (inputs + 6 * config.hidden) * 4 * 3
    return 4 * size + activations


def check_training_memory(configs: Iterable) -> None:
    """Every cell of the grid against the memory limit, before any data is read or any cell trains."""
    limit, source = memory_limit()
    seen = set()
    for config in configs:
        key = (config.modality, config.memory, config.hidden, config.neuron, config.time_bins, config.batch_size,
               config.max_train_samples, config.memory_options, config.front_options)
        if key in seen:
            continue
        seen.add(key)
        estimate = training_estimate(config)
        if estimate is not None and estimate > limit:
            raise NeuromemError(
                f"a {config.modality} {config.memory} cell with --hidden {config.hidden}, --time-bins "
                f"{config.time_bins or 'default'}, --batch-size {config.batch_size}"
                f"{' and ' + config.variant if config.memory_options else ''} needs an estimated {human(estimate)} "
                f"to train (parameters, gradients, optimizer state, one batch's activations); the limit is "
                f"{human(limit)} ({source}); use smaller sizes")
