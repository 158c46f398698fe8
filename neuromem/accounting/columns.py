"""The accounting columns every ablation result carries."""

from __future__ import annotations

from neuromem.accounting.counter import AccountingReport
from neuromem.accounting.energy import (
    HOROWITZ_45NM,
    EnergyProfile,
    ann_energy_per_sample,
    energy_per_sample,
    energy_ratio,
)

ABLATION_COLUMNS = (
    "activation_sparsity",
    "synops_per_sample",
    "dense_macs_per_sample",
    "energy_pj_per_sample",
    "ann_energy_pj_per_sample",
    "energy_ratio",
)


def ablation_columns(
    spiking: AccountingReport, ann: AccountingReport, profile: EnergyProfile = HOROWITZ_45NM
) -> dict[str, float]:
    """Exactly ABLATION_COLUMNS, from the accounting of a spiking model and of its
    ANN-equivalent on the same input. `dense_macs_per_sample` is the dense count of
    the spiking model's graph (the operations its ANN-equivalent executes)."""
    spiking_energy = energy_per_sample(spiking, profile)
    ann_energy = ann_energy_per_sample(ann, profile)
    return {
        "activation_sparsity": spiking.activation_sparsity,
        "synops_per_sample": spiking.synops_per_sample,
        "dense_macs_per_sample": spiking.dense_ops_per_sample,
        "energy_pj_per_sample": spiking_energy.total_pj,
        "ann_energy_pj_per_sample": ann_energy.total_pj,
        "energy_ratio": energy_ratio(ann_energy, spiking_energy),
    }


def energy_assumptions(spiking: AccountingReport, ann: AccountingReport, profile: EnergyProfile = HOROWITZ_45NM) -> list[str]:
    """The lines to print beside the energy columns: every count, price and source."""
    spiking_energy = energy_per_sample(spiking, profile)
    ann_energy = ann_energy_per_sample(ann, profile)
    ratio = energy_ratio(ann_energy, spiking_energy)
    return (
        spiking_energy.lines()
        + ann_energy.lines()
        + [f"energy ratio (ANN / spiking) = {ann_energy.total_pj:,.1f} / {spiking_energy.total_pj:,.1f} = {ratio:.2f}x"]
    )


def accounting_metrics(
    spiking_model, ann_model, batches, profile: EnergyProfile = HOROWITZ_45NM, batch_dim: int = 1
) -> dict:
    """Count a spiking model and its ANN-equivalent on the same batches and return what a
    cell's metrics need: the ABLATION_COLUMNS, plus "layer_sparsity" (spiking model),
    "accounting" / "ann_accounting" (full per-sample reports), "energy_profile" and
    "energy_assumptions" (the lines to print beside the numbers) — the keys the engram
    report reads. `batches`: the model inputs, iterated twice (a list, not a generator).
    The ANN's dense count depends only on its architecture, so an untrained twin gives
    the same `ann_energy_pj_per_sample` under the default dense-MAC assumption."""
    from neuromem.accounting.counter import account_model

    batches = list(batches)
    spiking = account_model(spiking_model, batches, batch_dim=batch_dim)
    ann = account_model(ann_model, batches, batch_dim=batch_dim)
    return {
        **ablation_columns(spiking, ann, profile),
        "layer_sparsity": spiking.layer_sparsity(),
        "accounting": spiking.to_dict(),
        "ann_accounting": ann.to_dict(),
        "energy_profile": profile.name,
        "energy_assumptions": energy_assumptions(spiking, ann, profile),
    }
