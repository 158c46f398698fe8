"""A training cell's configuration: everything its numbers are a pure function of."""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

# Fields that price a trained cell but do not change what is trained: left out of the digest
# (a cell priced under another profile is the same trained cell; `neuromem reprice` re-prices it).
PRICING_FIELDS = ("energy_profile",)
# Fields of how a cell is run, not of what it learns: out of its identity and its variant (a cell trained on the GPU
# is the same cell as on the CPU; its results record the device), and out of its stored config at their default.
RUNTIME_FIELDS = {"device": "cpu"}
_NOT_IDENTITY = (*PRICING_FIELDS, *RUNTIME_FIELDS)
# Fields a variant label names when they differ from the defaults (memory options are always named).
VARIANT_FIELDS = ("neuron", "hidden", "time_bins", "learning_rate", "weight_decay", "precision")
# Fields added after cells were first stored: left out of the identity while at their default, so every
# cell trained before they existed keeps its id.
OPTIONAL_FIELDS = {"task_options": (), "front_options": (), "augment": (), "weight_decay": 0.0, "fold": "",
                   "train_also": (), "neuron_options": (), "init_from": (), "freeze": "", "pairing": "",
                   "precision": "fp32", "rate_options": ()}
# option fields stored as {key: value} objects
_OPTION_DICTS = ("task_options", "front_options", "neuron_options", "rate_options")


@dataclass(frozen=True)
class CellConfig:
    modality: str
    memory: str
    seed: int = 0
    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 2e-3
    hidden: int = 256
    neuron: str = "lif"  # "dense" gives the ANN-equivalent baseline of the same graph
    time_bins: int | None = None  # None: the data set's default binning
    max_train_samples: int | None = None  # per data set; None: the whole split
    threads: int = 1  # torch intra-op threads: fixed so that results match across executors
    device: str = "cpu"  # resolved --device ("cpu", "cuda", "cuda:N"): recorded in the results, not in the identity
    memory_options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    energy_profile: str = "horowitz-45nm"  # neuromem.accounting.energy.PROFILES
    # settings of an externally run task (trimodal: preset, schedule); left out of the identity when empty
    task_options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    data_fingerprint: str = ""  # the data root it learns from (neuromem.data.cache.root_fingerprint): other data, other cell
    # keyword arguments of the front ends (e.g. delays, dropout, neuron time constants); see `neuromem.models.frontends`
    front_options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    # training-time augmentation of the binned inputs, in order (`neuromem.data.augment`): ((name, strength), ...)
    augment: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    weight_decay: float = 0.0  # AdamW's decoupled weight decay (0: Adam, as before it existed)
    # one fold of a cross-validation protocol: "speaker=NAME" trains on every other speaker of the data set
    # (both splits pooled) and tests on NAME (`neuromem ablate --cv speakers`); "" the data set's own split
    fold: str = ""
    # further data roots of the same data set whose every sample is trained on too (never tested on), e.g. a
    # synthetic stand-in with many voices beside a few real speakers: ((resolved path, root fingerprint), ...)
    train_also: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # fields of the neuron model's parameter record (`neuromem.neurons.models`, e.g. reset="zero") given to every
    # spiking layer of the cell, front ends and spiking memory alike (`neuromem ablate --neuron-option`)
    neuron_options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    # a cell started from another cell's weights (`neuromem ablate --init-from`, `neuromem.train.transfer`):
    # (its model.pt resolved, its cell id, the checkpoint's sha256); another source or other weights: another cell
    init_from: tuple[str, ...] = field(default_factory=tuple)
    freeze: str = ""  # a part that keeps the source's weights (`--freeze`, `neuromem.train.transfer.FREEZE_PARTS`)
    pairing: str = ""  # "item": fixed one-to-one training pairs across senses (`neuromem.train.pairing`); "": by class
    # the synaptic products' dtype under autocast (`neuromem.precision`): fp32 (no autocast), bf16, fp16
    precision: str = "fp32"
    # a firing-rate ceiling on every spiking layer in training (`neuromem.train.rate_penalty`, `--rate-option`):
    # ((key, value), ...) of its RateOptions; () none
    rate_options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    @property
    def cell_id(self) -> str:
        kind = "" if self.neuron == "lif" else f"-{self.neuron}"
        fold = f"-{self.fold.partition('=')[2]}" if self.fold else ""
        return f"{self.modality}-{self.memory}{kind}{fold}-s{self.seed}-{self.digest()[:8]}"

    def digest(self) -> str:
        identity = {k: v for k, v in self.to_dict().items() if k not in _NOT_IDENTITY}
        canonical = json.dumps(identity, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def variant_digest(self) -> str:
        """Identity of the configuration without its seed and fold: cells with the same variant digest
        are repetitions of one configuration (seeds, cross-validation folds) and may be averaged; others never are."""
        identity = {k: v for k, v in self.to_dict().items() if k not in (*_NOT_IDENTITY, "seed", "fold")}
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()

    @property
    def variant(self) -> str:
        """A readable label of what this configuration sets: its memory options and the swept
        hyperparameters that differ from the defaults, e.g. "coupling=0" or "hidden=64 beta=4";
        "default" when nothing is set."""
        defaults = {f.name: f.default for f in fields(self)}
        parts = [f"{name}={_short(getattr(self, name))}" for name in VARIANT_FIELDS
                 if getattr(self, name) != defaults[name] and not (name == "neuron" and self.neuron == "dense")]
        parts += [f"{key}={_short(value)}" for key, value in (*self.memory_options, *self.task_options, *self.front_options,
                                                                   *self.neuron_options)]
        parts += [f"rate_{key}={_short(value)}" for key, value in self.rate_options]
        if self.augment:
            parts.append("augment=" + "+".join(f"{key}:{_short(value)}" for key, value in self.augment))
        if self.train_also:
            parts.append("train_also=" + "+".join(Path(path).name for path, _ in self.train_also))
        if self.init_from:
            parts.append(f"init_from={self.init_from[1]}")
        if self.freeze:
            parts.append(f"freeze={self.freeze}")
        if self.pairing:
            parts.append(f"pairing={self.pairing}")
        return " ".join(parts) or "default"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name, default in RUNTIME_FIELDS.items():
            if getattr(self, name) == default:
                del data[name]
        data["memory_options"] = dict(self.memory_options)
        for name, default in OPTIONAL_FIELDS.items():
            if getattr(self, name) == default:  # cells from before the field existed keep their identity
                del data[name]
        for name in _OPTION_DICTS:
            if name in data:
                data[name] = dict(getattr(self, name))
        if "augment" in data:  # ordered: the transforms run in this order
            data["augment"] = [list(pair) for pair in self.augment]
        if "train_also" in data:
            data["train_also"] = [list(pair) for pair in self.train_also]
        if "init_from" in data:
            data["init_from"] = list(self.init_from)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CellConfig":
        """The configuration a stored dict describes; keys this version does not know (a store written by a newer
        neuromem) are left out (`unknown_keys` names them)."""
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in dict(data).items() if k in known}
        data["memory_options"] = tuple(sorted(dict(data.get("memory_options") or {}).items()))
        for name in _OPTION_DICTS:
            data[name] = tuple(sorted(dict(data.get(name) or {}).items()))
        data["augment"] = tuple((str(name), value) for name, value in (data.get("augment") or ()))
        data["train_also"] = tuple((str(path), str(stamp)) for path, stamp in (data.get("train_also") or ()))
        data["init_from"] = tuple(str(part) for part in (data.get("init_from") or ()))
        return cls(**data)


def _short(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


_KINDS = {"str": (str,), "int": (int,), "float": (int, float)}


def unknown_keys(data: dict[str, Any]) -> list[str]:
    """Keys of a stored config this version of CellConfig does not have."""
    known = {f.name for f in fields(CellConfig)}
    return sorted(k for k in data if k not in known)


def config_problems(data: Any) -> list[str]:
    """What makes a stored config unusable here: not a mapping, a required field missing, a field of the wrong
    type (each names the field, the value and what is valid). Unknown keys are not problems."""
    if not isinstance(data, dict):
        return [f"config is a {type(data).__name__}, not an object"]
    problems = []
    for f in fields(CellConfig):
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:  # type: ignore[misc]
                problems.append(f"config lacks {f.name!r}")
            continue
        value, annotation = data[f.name], str(f.type)
        kinds = [k for k in ("str", "int", "float") if k in annotation.split(" | ")]
        if not kinds:
            continue
        allowed = tuple(t for k in kinds for t in _KINDS[k])
        ok = (value is None and "None" in annotation) or (isinstance(value, allowed) and not isinstance(value, bool))
        if ok and isinstance(value, float) and value != value:
            ok = False
        if not ok:
            problems.append(f"config {f.name} is {json.dumps(value, default=str)}; valid: {' or '.join(kinds)}"
                            f"{' or null' if 'None' in annotation else ''}")
    for name in ("memory_options", *_OPTION_DICTS):
        if data.get(name) is not None and not isinstance(data[name], dict):
            problems.append(f"config {name} is {json.dumps(data[name], default=str)[:60]}; valid: an object")
    if data.get("augment") is not None and not (isinstance(data["augment"], list)
                                                and all(isinstance(p, list) and len(p) == 2 for p in data["augment"])):
        problems.append("config augment is not a list of [name, strength] pairs")
    return problems


def stored_digest(data: dict[str, Any]) -> str:
    """The digest of a stored config dict as it is (unknown keys included: a newer version's cell keeps its id)."""
    identity = {k: v for k, v in data.items() if k not in _NOT_IDENTITY}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
