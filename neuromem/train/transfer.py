"""Transfer: start a cell from another cell's weights (`neuromem ablate --init-from CELL [--freeze PART]`).

Every parameter of the new network whose name and shape the source's network also has starts from the
source's value; a one-sense source feeding a one-sense cell of another data set is matched with the sense's
name swapped (N-MNIST's `memory.queries.nmnist.*` starts SHD's `memory.queries.shd.*`). What has no match
(another front end, a readout over another number of classes) keeps its fresh initialisation and is named,
with its shapes, in one line. `--freeze PART` keeps that part's transferred weights as they are while the
rest trains. The source (its model.pt, cell id and checkpoint hash) and the freeze choice are part of the
new cell's identity (`CellConfig.init_from`, `CellConfig.freeze`); a cell without them keeps its id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from neuromem.errors import NeuromemError


@dataclass(frozen=True)
class Part:
    """A part of a memory network, by the prefix of its parameter names."""

    name: str
    prefix: str


FREEZE_PARTS: dict[str, Part] = {p.name: p for p in (Part("memory", "memory."), Part("front-end", "front_ends."))}


@dataclass(frozen=True)
class TransferPlan:
    """Which target parameters start from which source parameters, and what cannot transfer (name: why)."""

    matched: dict[str, str]  # target name -> source name
    unmatched: dict[str, str]  # target name -> "(shape) vs source (shape)" or "(shape): the source has none"

    def line(self) -> str:
        """The one line naming what does not transfer."""
        if not self.unmatched:
            return f"all {len(self.matched)} parameters transferred"
        shown = "; ".join(f"{name} {why}" for name, why in self.unmatched.items())
        return f"{len(self.matched)} parameters transferred, {len(self.unmatched)} not: {shown}"


def _shape(shape) -> str:
    return "x".join(str(int(n)) for n in shape) or "scalar"


def _swap(name: str, old: str, new: str) -> str:
    return ".".join(new if part == old else part for part in name.split("."))


def plan_transfer(target: Mapping[str, torch.Size], source: Mapping[str, torch.Size], target_senses, source_senses
                  ) -> TransferPlan:
    """Match target parameter names and shapes against the source's. One sense each (another data set): the
    source's sense name stands for the target's in the names."""
    swap = (len(target_senses) == 1 and len(source_senses) == 1 and tuple(target_senses) != tuple(source_senses))
    matched, unmatched = {}, {}
    for name, shape in target.items():
        source_name = _swap(name, target_senses[0], source_senses[0]) if swap and name not in source else name
        if source_name not in source:
            unmatched[name] = f"({_shape(shape)}): the source has none"
        elif tuple(source[source_name]) != tuple(shape):
            unmatched[name] = f"({_shape(shape)}) vs source {source_name} ({_shape(source[source_name])})"
        else:
            matched[name] = source_name
    return TransferPlan(matched, unmatched)


def checkpoint_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _checkpoint_path(given: Path) -> Path:
    path = Path(given).expanduser()
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise NeuromemError(f"--init-from {given}: not a cell (no model.pt there); give a cells/<cell_id> folder of a "
                            "`neuromem ablate` run (or its model.pt)")
    return path.resolve()


def source_cell(given: Path) -> tuple[str, str, str]:
    """(model.pt resolved, cell id, checkpoint hash) of the cell `--init-from` names; one line if it is not one."""
    from neuromem.study.store import read_checkpoint_file
    from neuromem.train.config import CellConfig, config_problems
    from neuromem.train.tasks import TASKS

    path = _checkpoint_path(given)
    saved = read_checkpoint_file(path)
    config = saved.get("config") if isinstance(saved, dict) else None
    problems = config_problems(config) if config is not None else ["no config"]
    if problems or not isinstance(saved.get("state_dict"), dict) or not saved["state_dict"]:
        raise NeuromemError(f"--init-from {given}: {path} is not a cell's checkpoint ({(problems or ['no weights'])[0]}); "
                            "give a cells/<cell_id> folder of a `neuromem ablate` run")
    source = CellConfig.from_dict(config)
    if source.modality not in TASKS:
        raise NeuromemError(f"--init-from {given}: a {source.modality} cell keeps no network weights to start from; "
                            f"valid: cells of the spiking tasks ({', '.join(TASKS)})")
    return str(path), source.cell_id, checkpoint_hash(path)


def source_network(init_from: tuple[str, ...], group: str) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """The source's state dict for the target network `group` (its network of that name, else its only one),
    and the senses it was trained on."""
    from neuromem.study.store import read_checkpoint_file

    path, cell_id, stamp = init_from
    if not Path(path).is_file() or checkpoint_hash(Path(path)) != stamp:
        raise NeuromemError(f"--init-from {cell_id}: {path} is gone or changed since the cell was planned (hash "
                            f"{stamp}); re-run with the source cell as it is now")
    saved = read_checkpoint_file(path)
    networks = saved["state_dict"]
    name = group if group in networks else (next(iter(networks)) if len(networks) == 1 else None)
    if name is None:
        raise NeuromemError(f"--init-from {cell_id}: its networks are {', '.join(networks)}; none is {group!r} (give a "
                            "cell of one network, or one with a network of that name)")
    return networks[name], tuple(name.split("+"))  # the trainer names a network by its senses


def initialise(network: nn.Module, group: list[str], init_from: tuple[str, ...], freeze: str) -> dict[str, Any]:
    """Load what fits of the source into `network` (in place), freeze the chosen part's transferred parameters;
    the cell's metrics about it."""
    state, senses = source_network(init_from, "+".join(group))
    target = network.state_dict()
    plan = plan_transfer({k: v.shape for k, v in target.items()}, {k: v.shape for k, v in state.items()},
                         tuple(group), senses)
    if not plan.matched:
        raise NeuromemError(f"--init-from {init_from[1]}: no parameter fits this cell's network ({plan.line()})")
    network.load_state_dict({name: state[source] for name, source in plan.matched.items()}, strict=False)
    frozen = []
    if freeze:
        prefix = FREEZE_PARTS[freeze].prefix
        for name, parameter in network.named_parameters():
            if name.startswith(prefix) and name in plan.matched:
                parameter.requires_grad_(False)
                frozen.append(name)
        if not frozen:
            raise NeuromemError(f"--freeze {freeze}: no {freeze} parameter came from {init_from[1]} ({plan.line()})")
    return {"transfer_source": init_from[1], "transfer_matched": len(plan.matched), "transfer_frozen": len(frozen),
            "transfer_not_transferred": plan.line()}


def preview(config, group: list[str]) -> str:
    """The one line of what would not transfer into `config`'s network `group`, from the data sets' specs (no data
    read): the CLI says it before training."""
    from neuromem.data.registry import get_dataset
    from neuromem.models import build_network
    from neuromem.train.tasks import NUM_CONCEPTS, TASKS

    task = TASKS[config.modality]
    shapes = {d: get_dataset(d).spec.input_shape for d in group}
    classes = {d: NUM_CONCEPTS if task.concept_labels else get_dataset(d).spec.num_classes for d in group}
    with torch.device("meta"):
        network = build_network(shapes, classes, config.memory, hidden=config.hidden, neuron=config.neuron,
                                neuron_params=dict(config.neuron_options), memory_options=dict(config.memory_options),
                                front_options=dict(config.front_options))
    state, senses = source_network(config.init_from, "+".join(group))
    plan = plan_transfer({k: v.shape for k, v in network.state_dict().items()}, {k: v.shape for k, v in state.items()},
                         tuple(group), senses)
    if not plan.matched:
        raise NeuromemError(f"--init-from {config.init_from[1]}: no parameter fits the {config.modality} "
                            f"{config.memory} network ({plan.line()})")
    return plan.line()


def with_transfer(configs: list, init_from: Path | None, freeze: str | None) -> list:
    """--init-from and --freeze into each cell's identity; bad values one line."""
    from dataclasses import replace

    from neuromem.train.tasks import TASKS

    if freeze is not None and init_from is None:
        raise NeuromemError(f"--freeze {freeze} needs --init-from CELL (the weights to keep)")
    if freeze is not None and freeze not in FREEZE_PARTS:
        raise NeuromemError(f"--freeze {freeze!r} is not known; valid: {', '.join(FREEZE_PARTS)}")
    if init_from is None:
        return configs
    source = source_cell(init_from)
    outside = sorted({c.modality for c in configs if c.modality not in TASKS})
    if outside:
        raise NeuromemError(f"--init-from applies to the spiking tasks, not to {', '.join(outside)}")
    return [replace(c, init_from=source, freeze=freeze or "") for c in configs]



def say_transfer(configs: list, say) -> None:
    """One line per distinct network of the transferred cells: what does not transfer (before any training)."""
    from neuromem.train.trainer import _groups
    from neuromem.train.tasks import TASKS

    seen = set()
    for config in configs:
        if not config.init_from:
            continue
        for group in _groups(TASKS[config.modality]):
            key = (config.modality, config.memory, config.hidden, config.neuron, str(config.memory_options),
                   str(config.front_options), tuple(group))
            if key not in seen:
                seen.add(key)
                say(f"--init-from {config.init_from[1]} -> {config.modality} {config.memory} ({'+'.join(group)}): "
                    f"{preview(config, group)}")
