"""`--device auto|cpu|cuda|cuda:N`: the one place a command's device is resolved and checked.

`resolve_device(text, flag)` gives a `torch.device` or raises `DeviceError` (a NeuromemError, so the CLI prints one
line and exits 2; also a ValueError, for callers that collect ValueErrors) naming the flag, the value and what this
machine has. `auto` is CUDA where torch sees a CUDA device, else the CPU. The device a cell trains on is recorded in
its results (`describe`), never in its identity (`neuromem.train.config.RUNTIME_FIELDS`).

On the CPU nothing changes: the numba kernels stay the CPU path. On CUDA the neuron layers run the Triton kernels
generated from the neuron registry (`neuromem.neurons.fused_gpu`) where they apply, and `deterministic(device)` asks
torch for its deterministic algorithms (warn only: CUDA's scatter/index adds have none, see benchmarks/README.md).
"""

from __future__ import annotations

import os

import torch

from neuromem.errors import NeuromemError

DEVICE_HELP = "auto (CUDA when present, else the CPU), cpu, cuda or cuda:N"


class DeviceError(NeuromemError, ValueError):
    """A --device value this machine cannot run."""


def available() -> str:
    """What this machine offers, as an error line lists it."""
    if not torch.cuda.is_available():
        build = "a CPU-only torch build" if torch.version.cuda is None else "no CUDA device visible"
        return f"auto, cpu (no CUDA here: {build}, torch {torch.__version__})"
    count = torch.cuda.device_count()
    return "auto, cpu, cuda, " + ", ".join(f"cuda:{i}" for i in range(count))


def resolve_device(text: str | torch.device | None = "auto", flag: str = "--device") -> torch.device:
    """auto: CUDA when present, else the CPU; cpu, cuda, cuda:N as asked (DeviceError if this machine lacks it)."""
    if isinstance(text, torch.device):
        text = str(text)
    text = (text or "auto").strip()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise DeviceError(f"{flag} {text!r} is not a device; valid: {available()}") from None
    if device.type not in ("cpu", "cuda") or (device.type == "cpu" and device.index not in (None, 0)):
        raise DeviceError(f"{flag} {text!r} is not supported; valid: {available()}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"{flag} {text}: CUDA is not available on this machine; valid: {available()}")
        if (device.index or 0) >= torch.cuda.device_count():
            raise DeviceError(f"{flag} {text}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                              f"valid: {available()}")
    return device


def device_name(text: str | None) -> str:
    """The resolved device as a config records it: "cpu", "cuda" or "cuda:N"."""
    return str(resolve_device(text))


def describe(device: torch.device) -> dict[str, str]:
    """What a cell's results record about where it ran."""
    info = {"device": str(device)}
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda_version"] = str(torch.version.cuda)
    return info


def deterministic(device: torch.device) -> None:
    """Same seed, same numbers on the same device: torch's deterministic algorithms where it has them (warn only
    where it has none) and cuBLAS's fixed workspace. Nothing to do on the CPU (numba and torch's CPU ops are)."""
    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
