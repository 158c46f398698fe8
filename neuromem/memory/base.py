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

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn


OUTPUT_SPIKES = "output_spikes"


@dataclass
class MemoryOutput:
    representations: dict[str, torch.Tensor]  # modality -> (batch, output_size)
    extras: dict[str, Any] = field(default_factory=dict)  # module-specific tensors for its own loss


@dataclass(frozen=True)
class AssociativeRecall:
    """An associative memory's own retrieval rule with its trained settings, applicable to any stored
    patterns: `recall(cues (B, dim), patterns (P, dim)) -> retrieved states (B, dim)`. `beta` is its inverse
    temperature and `pattern_norm` the mean norm of its trained stored patterns (the capacity suite stores
    random patterns of that norm and compares with the modern-Hopfield theory at that beta); `rule` says in
    one line what the rule is."""

    dim: int
    beta: float
    pattern_norm: float
    rule: str
    recall: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class MemoryOptions:
    """A memory module's options, one frozen record per module (`MemoryModule.Options`): each field an
    option's name, type and default. It is the schema `--memory-option` is checked against (`option_fields`)
    and what the module reads (`module.options`). Options several modules share are records of their own
    that the modules' records extend (`SpikingOptions`, `SupConOptions`, `TTTBlockOptions`, `PooledOptions`).

    `check(memory)` refuses a bad value with a ValueError naming the module, the option and what is valid;
    a record that adds fields extends it (calling super().check(memory)). `ALIASES`: other names an option
    may be given by (cmhan: lambda = coupling)."""

    ALIASES: ClassVar[Mapping[str, str]] = {}

    def check(self, memory: str) -> None:
        """Raise ValueError("<memory> option <key> must be ..., got <value>") for a bad value."""

    @classmethod
    def option_fields(cls) -> dict[str, dataclasses.Field]:
        """name -> field (its `type` as written, its `default`), in declaration order."""
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def parse(cls, memory: str, options: Mapping[str, Any]) -> "MemoryOptions":
        """The checked record of keyword options (aliases resolved); TypeError for a name the record lacks."""
        given = {cls.ALIASES.get(key, key): value for key, value in options.items()}
        unknown = [key for key in options if cls.ALIASES.get(key, key) not in cls.option_fields()]
        if unknown:
            raise TypeError(f"{memory or cls.__name__} got unexpected option(s) {', '.join(sorted(unknown))}; valid: "
                            f"{', '.join([*cls.option_fields(), *cls.ALIASES])}")
        record = cls(**given)
        record.check(memory)
        return record

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.option_fields()}


def check_positive_int(memory: str, minimum: int = 1, **values: Any) -> None:
    """Each value an integer >= `minimum`, else a ValueError naming the module, the option and the value."""
    for option, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            valid = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise ValueError(f"{memory} option {option} must be {valid}, got {value!r}")


def check_choice(memory: str, option: str, value: Any, valid: tuple) -> None:
    if value not in valid:
        raise ValueError(f"{memory} option {option} must be one of {', '.join(valid)}, got {value!r}")


@dataclass(frozen=True)
class PooledOptions(MemoryOptions):
    """A module reading pooled firing rates in `time_bins` consecutive windows."""

    time_bins: int = 10

    def check(self, memory: str) -> None:
        super().check(memory)
        check_positive_int(memory, time_bins=self.time_bins)


class MemoryModule(nn.Module):
    """Base class; subclasses are registered with their option record (`register_memory(name, summary,
    XOptions)`), make their layers in `build(options)` (setting `output_size`) and implement `forward`.
    The constructor takes the options as keywords, keeps the checked record as `self.options` and calls
    `build` with it."""

    Options: ClassVar[type[MemoryOptions]] = MemoryOptions

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
        self.options = self.Options.parse(self.name, options)
        self.output_size: int = 0
        self.build(self.options)

    def build(self, options: MemoryOptions) -> None:
        """Make the module's layers for `self.input_sizes` from its checked options; set `output_size`."""

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

    def associative_recall(self) -> AssociativeRecall | None:
        """An associative memory (stored patterns retrieved from a cue) returns its retrieval rule, for the
        capacity suite to load with random patterns; None: the module stores no retrievable patterns."""
        return None

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
    options: type[MemoryOptions]  # the module's option record: the schema of --memory-option
    loihi_exportable: bool = False
    loihi_reason: str = ""  # why it cannot run on Loihi: one clause; empty when it can
    listed: bool = True  # among `memory_names()` (grids, `neuromem memories`, the memory contract tests)

    @property
    def loihi(self) -> str:
        """'yes' or 'no: <reason>', as `neuromem memories` and export refusals say it."""
        return "yes" if self.loihi_exportable else f"no: {self.loihi_reason}"


_REGISTRY: dict[str, MemoryInfo] = {}


def register_memory(name: str, summary: str, options: type[MemoryOptions] = MemoryOptions,
                    loihi_exportable: bool = False, loihi_reason: str = "", listed: bool = True):
    """Class decorator: make a memory module available by name to the trainer, CLI and reports, with
    `options`, its record of options (a frozen `MemoryOptions` dataclass).

    `loihi_exportable`: the module is a chain of Loihi-mappable spiking layers (`spiking`, and it must
    define `chip_layers`: checked here); otherwise `loihi_reason` says, in one clause, what Loihi cannot run.
    `listed=False`: a structural module that is not a memory to study (`none`, the passthrough of cells
    `neuromem import` builds from NIR graphs): `memory_info` finds it, `memory_names` leaves it out."""

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
        if not (dataclasses.is_dataclass(options) and issubclass(options, MemoryOptions)
                and options.__dataclass_params__.frozen):
            raise ValueError(f"memory {name!r}: its options must be a frozen dataclass extending MemoryOptions")
        cls.name, cls.Options = name, options
        _REGISTRY[name] = MemoryInfo(name, cls, summary, options, loihi_exportable, reason, listed)
        return cls

    return decorate


def loihi_memory_names() -> list[str]:
    """The registered modules that can run on Loihi (trained with neuron 'loihi')."""
    return [n for n, info in _REGISTRY.items() if info.loihi_exportable and info.listed]


def memory_names() -> list[str]:
    """The memories to study (grids, `neuromem memories`); `memory_info` also finds unlisted structural ones."""
    return [n for n, info in _REGISTRY.items() if info.listed]


def memory_info(name: str) -> MemoryInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown memory {name!r}; valid: {', '.join(_REGISTRY)}") from None


def build_memory(name: str, input_sizes: Mapping[str, int], **options: Any) -> MemoryModule:
    return memory_info(name).cls(input_sizes, **options)
