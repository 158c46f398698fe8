"""The one interface every memory module implements.

A memory module sits between the spiking front ends and the readouts. It
receives, for each modality present in the batch, the front end's spike train
(T, batch, features) and returns one representation per modality (batch, size)
— the *engram* that readouts classify and that the engram report compares
across senses. Modules with their own objective (contrastive, energy,
reconstruction) return it from `auxiliary_loss`; the trainer adds it to the
readout's cross-entropy and never asks which module it is talking to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import torch
from torch import nn


OUTPUT_SPIKES = "output_spikes"


@dataclass
class MemoryOutput:
    representations: dict[str, torch.Tensor]  # modality -> (batch, output_size)
    extras: dict[str, Any] = field(default_factory=dict)  # module-specific tensors for its own loss


class MemoryModule(nn.Module):
    """Base class; subclasses set `name`, `output_size` and implement `forward`."""

    name: ClassVar[str] = ""
    # modules that learn at test time (writes under no_grad in eval mode) say so
    adapts_at_test_time: ClassVar[bool] = False
    # spiking modules build their layers from the network's neuron model (their constructor takes
    # `neuron`) and return their output spike trains (T, batch, output_size) in extras[OUTPUT_SPIKES]
    spiking: ClassVar[bool] = False

    def __init__(self, input_sizes: Mapping[str, int], **options: Any) -> None:
        super().__init__()
        if not input_sizes:
            raise ValueError("a memory module needs at least one modality")
        self.input_sizes = dict(input_sizes)
        self.modalities = tuple(self.input_sizes)
        self.options = dict(options)
        self.output_size: int = 0

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> MemoryOutput:  # pragma: no cover - interface
        """inputs: modality -> spike train (T, batch, input_sizes[modality]); any non-empty subset."""
        raise NotImplementedError

    def auxiliary_loss(self, output: MemoryOutput, labels: torch.Tensor) -> torch.Tensor:
        """The module's own objective for this batch (already weighted); zero by default."""
        first = next(iter(output.representations.values()))
        return first.new_zeros(())

    def retrieve(self, cue_modality: str, cue: torch.Tensor, target_modality: str) -> torch.Tensor:
        """Cross-modal recall: given a cue's spike train in one modality, the memory's
        estimate of the target modality's representation (batch, output_size).
        Default: the cue's own representation (a shared space); modules with
        per-modality stores override it."""
        return self.forward({cue_modality: cue}).representations[cue_modality]

    def reset_memory(self) -> None:
        """Restore memories written at test time; no-op for modules that do not adapt."""

    def chip_layers(self, modality: str) -> list[nn.Module]:
        """A Loihi-exportable module (registered with `loihi_exportable=True`, which checks it defines this):
        its layers one modality's signal passes, in order, each feeding the next; the export reads the cell's
        chain of chip layers as front end + these + readout. Other modules have no chip form."""
        raise NotImplementedError(f"memory {self.name!r} is not a chain of chip layers: {memory_info(self.name).loihi}")


TEST_TIME_WRITES = "writes its memories at test time (Loihi runs fixed synaptic weights)"
FLOAT_MATH = "float math on pooled firing rates"


@dataclass(frozen=True)
class MemoryInfo:
    name: str
    cls: type[MemoryModule]
    summary: str
    loihi_exportable: bool = False
    loihi_reason: str = ""  # why it cannot run on Loihi: one clause; empty when it can

    @property
    def loihi(self) -> str:
        """'yes' or 'no: <reason>', as `neuromem memories` and export refusals say it."""
        return "yes" if self.loihi_exportable else f"no: {self.loihi_reason}"


_REGISTRY: dict[str, MemoryInfo] = {}


def register_memory(name: str, summary: str, loihi_exportable: bool = False, loihi_reason: str = ""):
    """Class decorator: make a memory module available by name to the trainer, CLI and reports.

    `loihi_exportable`: the module is a chain of Loihi-mappable spiking layers (`spiking`, and it must
    define `chip_layers`: checked here); otherwise `loihi_reason` says, in one clause, what Loihi cannot run."""

    def decorate(cls: type[MemoryModule]) -> type[MemoryModule]:
        if name in _REGISTRY:
            raise ValueError(f"memory {name!r} registered twice")
        if loihi_exportable and not cls.spiking:
            raise ValueError(f"memory {name!r}: only spiking modules can be Loihi-exportable")
        if loihi_exportable and cls.chip_layers is MemoryModule.chip_layers:
            raise ValueError(f"memory {name!r}: a Loihi-exportable module defines chip_layers(modality), its layers "
                             "in signal order")
        reason = "" if loihi_exportable else (
            loihi_reason or (TEST_TIME_WRITES if cls.adapts_at_test_time else FLOAT_MATH))
        cls.name = name
        _REGISTRY[name] = MemoryInfo(name, cls, summary, loihi_exportable, reason)
        return cls

    return decorate


def loihi_memory_names() -> list[str]:
    """The registered modules that can run on Loihi (trained with neuron 'loihi')."""
    return [n for n, info in _REGISTRY.items() if info.loihi_exportable]


def memory_names() -> list[str]:
    return list(_REGISTRY)


def memory_info(name: str) -> MemoryInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown memory {name!r}; valid: {', '.join(_REGISTRY)}") from None


def build_memory(name: str, input_sizes: Mapping[str, int], **options: Any) -> MemoryModule:
    return memory_info(name).cls(input_sizes, **options)
