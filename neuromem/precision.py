"""`--precision fp32|bf16|fp16`: the dtype of a cell's synaptic products (torch autocast), in one place.

fp32 (the default) is no autocast at all: every cell trained before the flag existed, and every fp32 cell since,
runs the same operations as before (precision is part of a cell's identity only when it is not fp32,
`neuromem.train.config.OPTIONAL_FIELDS`). bf16 / fp16 run the forward under `torch.autocast` on the cell's device:
the linear and convolution products (autocast's own list) in that dtype; the neuron dynamics stay float32
(`neuron_sequence` takes its currents back to float32 under autocast: the membrane is a running sum that 8 bits of
mantissa would round away, and the numba / Triton kernels are float32), and so do the weights and Adam's state
(autocast casts copies). fp16 trains with a gradient scaler (its range underflows small gradients; bf16 has
float32's range and needs none). fp16 asks for CUDA (one line, exit 2): its products and loss scaling are a GPU's
(tensor cores); on a CPU bf16 is the autocast type (native on CPUs with AVX512-BF16 / AMX).
"""

from __future__ import annotations

import contextlib

import torch

from neuromem.errors import NeuromemError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISION_HELP = ("fp32 (default: no autocast), bf16 or fp16: the synaptic products under torch autocast, the neuron "
                  "state in float32; fp16 needs CUDA; part of the cell's identity when not fp32")


class PrecisionError(NeuromemError, ValueError):
    """A --precision value that is not known, or that this device cannot run."""


def check_precision(text: str, device: torch.device | str, flag: str = "--precision") -> str:
    """`text` if this device runs it; else PrecisionError naming the flag, the value and what is valid here."""
    device = torch.device(device)
    if text not in PRECISIONS:
        raise PrecisionError(f"{flag} {text!r} is not known; valid: {', '.join(PRECISIONS)}")
    if text == "fp16" and device.type != "cuda":
        raise PrecisionError(f"{flag} fp16 needs CUDA (device here: {device}; on a CPU the autocast type is bf16); "
                             "valid on the CPU: fp32, bf16")
    return text


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The forward's context: nothing for fp32, else torch.autocast in that dtype on the device's type."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    # no cast cache: autocast keeps one low-precision copy of each weight until its context ends, and a context
    # around a training loop would go on reading the copy of the weights before the optimizer's steps
    return torch.autocast(torch.device(device).type, dtype=dtype, cache_enabled=False)


def grad_scaler(precision: str, device: torch.device | str) -> torch.amp.GradScaler:
    """A loss scaler for fp16 (a pass-through, enabled=False, for fp32 and bf16)."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


def full_precision(tensor: torch.Tensor) -> torch.Tensor:
    """A neuron layer's currents back in float32 under autocast (they arrive in bf16/fp16 from an autocast
    product); as they are otherwise (float64 stays float64, and nothing changes without autocast)."""
    if tensor.dtype in (torch.bfloat16, torch.float16) and torch.is_autocast_enabled(tensor.device.type):
        return tensor.float()
    return tensor
