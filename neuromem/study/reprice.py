"""Re-price a finished cell's energy from its stored per-sample operation counts, without
retraining: the same arithmetic the trainer applies (neuromem.accounting.columns), under
another energy profile. Only the energy columns change; accuracy and counts stay as stored."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import numpy as np

from neuromem.accounting.columns import ablation_columns, energy_assumptions
from neuromem.accounting.counter import AccountingReport
from neuromem.accounting.energy import EnergyProfile
from neuromem.errors import NeuromemError
from neuromem.train.config import CellConfig
from neuromem.train.tasks import TASKS

ENERGY_COLUMNS = ("energy_pj_per_sample", "ann_energy_pj_per_sample", "energy_ratio")


def _report(data: dict[str, Any]) -> AccountingReport:
    known = {f.name for f in fields(AccountingReport)}
    return AccountingReport(**{k: v for k, v in data.items() if k in known})


def repriced_metrics(config: CellConfig, metrics: dict[str, Any], profile: EnergyProfile) -> dict[str, Any]:
    """`metrics` with the energy columns (overall and per data set), the energy assumptions and
    the profile name recomputed under `profile`. Raises NeuromemError when the counts are missing."""
    task = TASKS.get(config.modality)
    if task is None:
        raise NeuromemError(f"{config.modality} cells carry no per-sample operation counts to re-price")
    missing = [d for d in task.datasets if f"accounting_{d}" not in metrics or f"ann_accounting_{d}" not in metrics]
    if missing:
        raise NeuromemError(f"no stored operation counts for {', '.join(missing)} (cell trained before counts were kept)")
    groups = [list(task.datasets)] if task.shared_network else [[d] for d in task.datasets]
    out = dict(metrics)
    accounts = []
    for group in groups:
        per_dataset = {}
        lines = []
        for d in group:
            spiking, ann = _report(metrics[f"accounting_{d}"]), _report(metrics[f"ann_accounting_{d}"])
            per_dataset[d] = ablation_columns(spiking, ann, profile)
            lines += [f"[{d}] {line}" for line in energy_assumptions(spiking, ann, profile)]
            out.update({f"{c}_{d}": per_dataset[d][c] for c in ENERGY_COLUMNS})
        accounts.append({"columns": {c: float(np.mean([per_dataset[d][c] for d in group])) for c in ENERGY_COLUMNS},
                         "lines": lines})
    if len(accounts) == 1:  # one network: the mean over its data sets (as the trainer's _account)
        out.update(accounts[0]["columns"])
    else:  # separate networks: per-sample energies averaged, the ratio of the averages (as _merge_accounts)
        for column in ENERGY_COLUMNS[:2]:
            out[column] = float(np.mean([a["columns"][column] for a in accounts]))
        out["energy_ratio"] = out["ann_energy_pj_per_sample"] / out["energy_pj_per_sample"]
    out["energy_assumptions"] = [line for a in accounts for line in a["lines"]]
    out["energy_profile"] = profile.name
    return out


def reprice_store(store, profile: EnergyProfile, cell_ids: set[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Re-price every finished cell (or those in `cell_ids`); returns (re-priced ids, skipped id -> why)."""
    done, skipped = [], {}
    for row in store.rows():
        if row["status"] != "ok" or (cell_ids is not None and row["cell_id"] not in cell_ids):
            continue
        config = CellConfig.from_dict(row["config"])
        try:
            metrics = repriced_metrics(config, row["metrics"], profile)
        except NeuromemError as error:
            skipped[row["cell_id"]] = str(error)
            continue
        store.update_metrics(replace(config, energy_profile=profile.name), metrics)
        done.append(row["cell_id"])
    return done, skipped
