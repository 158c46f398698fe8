"""Sweeps as grid axes: a comma list on an ablate flag is an axis, the grid is the product.

`--hidden 64,128 --memory-option hopfield.beta=1,4,16` gives 2 x 3 configurations per
(modality, memory) where the option applies, each repeated over the seeds. A value in brackets
or braces is one JSON value (`--memory-option sizes=[1,2]` is not an axis).
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Callable, Iterable, Sequence

from neuromem.errors import NeuromemError
from neuromem.train.config import CellConfig


def split_values(text: str) -> list[str]:
    """Split on commas outside brackets/braces/quotes."""
    parts, depth, quote, current = [], 0, None, []
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
    except RecursionError:
        raise NeuromemError(f"option value {text[:30]}... nests deeper than can be read; give a plain value "
                            "(a number, true/false, a string or a shallow list)") from None


def parse_axis(text: str | None, flag: str, kind: Callable[[str], Any], valid: str,
               check: Callable[[Any], bool] = lambda v: True) -> list[Any]:
    """A flag's comma list as axis values (one value: an axis of length one); None stays [None]."""
    if text is None:
        return [None]
    values = []
    for item in split_values(str(text)):
        try:
            value = kind(item)
        except ValueError:
            value = None
        if item == "" or value is None or not check(value):
            raise NeuromemError(f"{flag} {item!r} is not valid in {text!r}; expected {valid}")
        values.append(value)
    return list(dict.fromkeys(values))


def parse_memory_option_axes(options: Sequence[str], memories: Sequence[str]) -> dict[str, dict[str, list[Any]]]:
    """`key=v1,v2` applies to every memory, `memory.key=v1,v2` to one; a later flag for the same
    (memory, key) replaces an earlier one."""
    parsed: dict[str, dict[str, list[Any]]] = {m: {} for m in memories}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise NeuromemError(f"--memory-option {option!r}: expected key=value or memory.key=value (value may be a comma list)")
        scope, dot, name = key.rpartition(".")
        if dot and scope not in parsed:
            raise NeuromemError(f"--memory-option {option!r}: memory {scope!r} is not in --memory ({', '.join(memories)})")
        items = split_values(value)
        if any(item == "" for item in items):
            raise NeuromemError(f"--memory-option {option!r}: empty value in the comma list")
        values = list(dict.fromkeys(_parse_json(item) for item in items)) if len(items) > 1 else [_parse_json(value)]
        for memory in [scope] if dot else memories:
            parsed[memory][name] = values
    return parsed


def parse_option_axes(options: Sequence[str], flag: str, example: str = "delays=25") -> dict[str, list[Any]]:
    """`key=v1,v2` (repeatable) -> {key: [v1, v2]}: one axis per key; a later flag for a key replaces an earlier one."""
    parsed: dict[str, list[Any]] = {}
    for option in options:
        key, sep, value = option.partition("=")
        items = split_values(value)
        if not sep or not key.strip() or any(item == "" for item in items):
            raise NeuromemError(f"{flag} {option!r}: expected key=value (value may be a comma list), e.g. {example}")
        parsed[key.strip()] = list(dict.fromkeys(_parse_json(item) for item in items)) if len(items) > 1 else [_parse_json(value)]
    return parsed


def with_variants(configs: list[CellConfig], front_axes: dict[str, list[Any]],
                  augments: Sequence[tuple] = ((),), neuron_axes: dict[str, list[Any]] | None = None) -> list[CellConfig]:
    """Each configuration once per front-option combination, augmentation recipe and neuron-option combination."""
    from dataclasses import replace

    out: dict[str, CellConfig] = {}
    for config in configs:
        for front in option_combinations(front_axes):
            for recipe in augments:
                for neuron in option_combinations(neuron_axes or {}):
                    varied = replace(config, front_options=tuple(sorted(front.items())), augment=tuple(recipe),
                                     neuron_options=tuple(sorted(neuron.items())))
                    out.setdefault(varied.cell_id, varied)
    return list(out.values())


def with_folds(configs: list[CellConfig], folds_of: Callable[[str], list[str]]) -> list[CellConfig]:
    """Each configuration once per cross-validation fold of its modality (`folds_of(modality)`)."""
    from dataclasses import replace

    return [replace(config, fold=fold) for config in configs for fold in folds_of(config.modality)]


def option_combinations(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = sorted(axes)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys))]


def expand_grid(modalities: Iterable[str], memories: Iterable[str], seeds: int,
                axes: dict[str, list[Any]], option_axes: dict[str, dict[str, list[Any]]],
                fixed: dict[str, Any], neuron_for: Callable[[str, str], str] = lambda modality, neuron: neuron,
                epochs_for: Callable[[str], int] | None = None) -> list[CellConfig]:
    """modality x memory x (hyperparameter axes) x (that memory's option axes) x seed.
    `neuron_for(modality, neuron)` maps the neuron a modality really uses (e.g. dense tasks);
    configurations that coincide after that are listed once. `fixed["epochs"]` None: `epochs_for(modality)`."""
    names = sorted(axes)
    configs: dict[str, CellConfig] = {}
    for modality in modalities:
        cell_fixed = dict(fixed)
        if cell_fixed.get("epochs", 0) is None:
            if epochs_for is None:
                del cell_fixed["epochs"]  # CellConfig's default
            else:
                cell_fixed["epochs"] = epochs_for(modality)
        for memory in memories:
            for values in itertools.product(*(axes[n] for n in names)):
                chosen = dict(zip(names, values))
                chosen["neuron"] = neuron_for(modality, chosen.get("neuron", "lif"))
                for options in option_combinations(option_axes.get(memory, {})):
                    for seed in range(seeds):
                        config = CellConfig(modality=modality, memory=memory, seed=seed, **cell_fixed, **chosen,
                                            memory_options=tuple(sorted(options.items())))
                        configs.setdefault(config.cell_id, config)
    return list(configs.values())


class RunPlan:
    """What a (re-)run of a grid does with each of its cells."""

    def __init__(self, configs: list[CellConfig], stored: dict[str, dict[str, Any]],
                 current: Callable[[str], dict[str, Any]], rerun_stale: bool) -> None:
        """`current(memory)`: the provenance a cell of that memory module would be trained with now."""
        from neuromem.train.provenance import stale_reason

        self.total, self.rerun_stale = len(configs), rerun_stale
        self.stale: dict[str, str] = {}
        self.reprice: list[CellConfig] = []
        self.pending: list[CellConfig] = []
        for config in configs:
            row = stored.get(config.cell_id)
            if row is None or row["status"] != "ok":
                self.pending.append(config)
                continue
            reason = stale_reason(row["metrics"].get("provenance"), current(config.memory))
            if reason:
                self.stale[config.cell_id] = reason
                if rerun_stale:
                    self.pending.append(config)
                    continue
            if row["metrics"].get("energy_profile", config.energy_profile) != config.energy_profile:
                self.reprice.append(config)

    def messages(self, executor: str) -> list[str]:
        lines = [f"{self.total} cells: {self.total - len(self.pending)} already finished, {len(self.pending)} to run ({executor})"]
        if self.stale:
            head = (f"stale: re-training {len(self.stale)} finished cells (--rerun stale):" if self.rerun_stale else
                    f"stale: {len(self.stale)} finished cells were computed with other model code or another neuromem version; kept as they are "
                    "(re-run with --rerun stale to re-train exactly these):")
            lines.append(head)
            lines += [f"  {cell_id}: {reason}" for cell_id, reason in sorted(self.stale.items())]
        return lines


def plan_run(store, configs: list[CellConfig], rerun_stale: bool = False) -> RunPlan:
    from neuromem.train.provenance import current_provenance

    stored = {row["cell_id"]: row for row in store.rows()}
    return RunPlan(configs, stored, current_provenance, rerun_stale)


def print_dry_run(configs: list[CellConfig], out, rerun_stale: bool, say: Callable[[str], None]) -> None:
    """One line per cell of the grid: whether it would run, its variant label and seed. Reads an
    existing store in `out` (never creates one), trains nothing."""
    from pathlib import Path

    from neuromem.study.store import ResultStore

    store_path = Path(out) / "results.sqlite"
    plan = plan_run(ResultStore(out), configs, rerun_stale) if store_path.is_file() else RunPlan(configs, {}, lambda memory: {}, rerun_stale)
    to_run = {c.cell_id for c in plan.pending}
    say(f"dry run: {len(configs)} cells, {len(to_run)} would run, {len(configs) - len(to_run)} already finished")
    for config in configs:
        state = "run " if config.cell_id in to_run else "done"
        if config.cell_id in plan.stale:
            state += " (stale)"
        say(f"{state}  {config.cell_id}  modality={config.modality} memory={config.memory} "
            f"variant={config.variant!r} seed={config.seed}")


def reprice_finished(store, plan: RunPlan, profile_name: str, say: Callable[[str], None]) -> None:
    """Finished cells the grid keeps but that were priced under another profile: re-price them."""
    if not plan.reprice:
        return
    from neuromem.accounting.energy import energy_profile
    from neuromem.study.reprice import reprice_store

    done, skipped = reprice_store(store, energy_profile(profile_name), {c.cell_id for c in plan.reprice})
    say(f"re-priced {len(done)} finished cells under {profile_name} from their stored counts (no retraining)")
    for cell_id, why in sorted(skipped.items()):
        say(f"  not re-priced: {cell_id}: {why}")
