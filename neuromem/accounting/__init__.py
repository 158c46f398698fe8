"""Activation sparsity, synaptic operations, footprint and energy of evaluated models
(NeuroBench definitions), and the accounting columns of every ablation result."""

from neuromem.accounting.columns import ABLATION_COLUMNS, ablation_columns, accounting_metrics, energy_assumptions
from neuromem.accounting.counter import (
    AccountingReport,
    LayerAccount,
    SynapticOperationCounter,
    account_model,
    connection_sparsity,
    footprint_bytes,
)
from neuromem.accounting.energy import (
    HOROWITZ_45NM,
    LOIHI,
    PROFILES,
    EnergyEstimate,
    EnergyProfile,
    EnergyTerm,
    ann_energy_per_sample,
    energy_per_sample,
    energy_profile,
    energy_ratio,
)

__all__ = [
    "ABLATION_COLUMNS",
    "ablation_columns",
    "accounting_metrics",
    "energy_assumptions",
    "AccountingReport",
    "LayerAccount",
    "SynapticOperationCounter",
    "account_model",
    "connection_sparsity",
    "footprint_bytes",
    "HOROWITZ_45NM",
    "LOIHI",
    "PROFILES",
    "EnergyEstimate",
    "EnergyProfile",
    "EnergyTerm",
    "ann_energy_per_sample",
    "energy_per_sample",
    "energy_profile",
    "energy_ratio",
]
