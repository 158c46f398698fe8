"""Energy per inference from an accounting report and a per-operation energy profile.

Energy = sum over operation kinds of (count per sample x energy per operation).
Every term carries its count, its per-operation energy and the source of that
figure, so a report can print each assumption beside the number.

The spiking model is charged effective ACs and MACs (events that do not happen
cost nothing), plus neuron updates and spikes where the profile prices them.
Its ANN-equivalent runs on conventional hardware, which executes every MAC of
its graph whether an activation is zero or not (`ann_operations="dense"`);
`"effective"` instead assumes a zero-skipping accelerator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from neuromem.accounting.counter import AccountingReport
from neuromem.errors import NeuromemError

HOROWITZ_2014 = (
    "M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014, "
    "energy table for 45 nm, 0.9 V"
)
DAVIES_2018 = (
    "M. Davies et al., 'Loihi: a neuromorphic manycore processor with on-chip learning', "
    "IEEE Micro 38(1):82-99, 2018, table of energy/performance figures (14 nm, 0.75 V)"
)


@dataclass(frozen=True)
class EnergyProfile:
    name: str
    ac_pj: float  # one accumulate (a spike selecting a weight)
    mac_pj: float  # one multiply-accumulate on the spiking model's non-spiking parts
    ann_mac_pj: float  # one MAC of the ANN-equivalent on conventional hardware
    neuron_update_pj: float = 0.0  # one neuron-step without a spike
    active_neuron_update_pj: float = 0.0  # one neuron-step that emits a spike
    spike_pj: float = 0.0  # routing one emitted spike
    ann_operations: Literal["dense", "effective"] = "dense"
    sources: dict[str, str] = field(default_factory=dict)  # field name -> where the figure comes from

    def with_overrides(self, **overrides) -> "EnergyProfile":
        unknown = set(overrides) - set(self.__dataclass_fields__)
        if unknown:
            raise NeuromemError(
                f"unknown energy parameter(s) {', '.join(sorted(unknown))}; valid: "
                + ", ".join(f for f in self.__dataclass_fields__ if f not in ("name", "sources"))
            )
        sources = dict(self.sources)
        for key in overrides:
            sources[key] = "set by the user"
        return replace(self, **overrides, sources=sources)


HOROWITZ_45NM = EnergyProfile(
    name="horowitz-45nm",
    # 32-bit float add 0.9 pJ; a MAC is a float multiply (3.7 pJ) plus an add (0.9 pJ)
    ac_pj=0.9,
    mac_pj=4.6,
    ann_mac_pj=4.6,
    sources={
        "ac_pj": HOROWITZ_2014 + ": 32-bit float add 0.9 pJ",
        "mac_pj": HOROWITZ_2014 + ": 32-bit float mult 3.7 pJ + add 0.9 pJ",
        "ann_mac_pj": HOROWITZ_2014 + ": 32-bit float mult 3.7 pJ + add 0.9 pJ",
        "neuron_update_pj": "not priced (arithmetic-only model, as in the SNN-vs-ANN literature)",
        "active_neuron_update_pj": "not priced",
        "spike_pj": "not priced; memory access and data movement are excluded for both networks",
        "ann_operations": "dense: conventional hardware executes every MAC, zeros included",
    },
)

LOIHI = EnergyProfile(
    name="loihi",
    ac_pj=23.6,  # minimum energy per synaptic spike operation
    mac_pj=4.6,  # non-spiking parts (memory, readout) run off-chip on a conventional processor
    ann_mac_pj=4.6,
    neuron_update_pj=52.0,  # inactive neuron update
    active_neuron_update_pj=81.0,  # active neuron update
    spike_pj=1.7,  # within-tile spike energy
    sources={
        "ac_pj": DAVIES_2018 + ": synaptic spike op (min) 23.6 pJ",
        "neuron_update_pj": DAVIES_2018 + ": neuron update, inactive, 52 pJ",
        "active_neuron_update_pj": DAVIES_2018
        + ": neuron update, active, 81 pJ (neuromem charges it to neuron-steps that emit a spike)",
        "spike_pj": DAVIES_2018 + ": within-tile spike energy 1.7 pJ (tile hops, 3.5 pJ each, not modelled)",
        "mac_pj": HOROWITZ_2014 + ": host-side float MAC 4.6 pJ for the non-spiking parts",
        "ann_mac_pj": HOROWITZ_2014 + ": 32-bit float MAC 4.6 pJ",
        "ann_operations": "dense: conventional hardware executes every MAC, zeros included",
    },
)

PROFILES = {profile.name: profile for profile in (HOROWITZ_45NM, LOIHI)}


def energy_profile(name: str, **overrides) -> EnergyProfile:
    if name not in PROFILES:
        raise NeuromemError(f"unknown energy profile {name!r}; valid: {', '.join(PROFILES)}")
    profile = PROFILES[name]
    return profile.with_overrides(**overrides) if overrides else profile


@dataclass(frozen=True)
class EnergyTerm:
    operation: str
    count_per_sample: float
    pj_per_operation: float
    source: str

    @property
    def energy_pj(self) -> float:
        return self.count_per_sample * self.pj_per_operation


@dataclass(frozen=True)
class EnergyEstimate:
    network: str  # "spiking" | "ann"
    profile: str
    terms: tuple[EnergyTerm, ...]

    @property
    def total_pj(self) -> float:
        return sum(term.energy_pj for term in self.terms)

    def lines(self) -> list[str]:
        """Human-readable: every term with its count, price and source."""
        out = [f"{self.network} energy per sample ({self.profile}): {self.total_pj:,.1f} pJ"]
        for term in self.terms:
            out.append(
                f"  {term.operation}: {term.count_per_sample:,.1f} x {term.pj_per_operation:g} pJ "
                f"= {term.energy_pj:,.1f} pJ  [{term.source}]"
            )
        return out

    def to_dict(self) -> dict:
        return {
            "network": self.network,
            "profile": self.profile,
            "total_pj": self.total_pj,
            "terms": [asdict(term) | {"energy_pj": term.energy_pj} for term in self.terms],
        }


def _silent_updates(report: AccountingReport) -> float:
    return max(report.neuron_updates_per_sample - report.spikes_per_sample, 0.0)


def energy_per_sample(report: AccountingReport, profile: EnergyProfile = HOROWITZ_45NM) -> EnergyEstimate:
    """Energy of one inference of the spiking model described by `report`."""
    source = profile.sources.get
    terms = [
        EnergyTerm("effective ACs", report.effective_acs_per_sample, profile.ac_pj, source("ac_pj", "")),
        EnergyTerm("effective MACs", report.effective_macs_per_sample, profile.mac_pj, source("mac_pj", "")),
    ]
    if profile.neuron_update_pj or profile.active_neuron_update_pj:
        terms.append(
            EnergyTerm(
                "neuron updates without a spike",
                _silent_updates(report),
                profile.neuron_update_pj,
                source("neuron_update_pj", ""),
            )
        )
        terms.append(
            EnergyTerm(
                "neuron updates with a spike",
                report.spikes_per_sample,
                profile.active_neuron_update_pj,
                source("active_neuron_update_pj", ""),
            )
        )
    if profile.spike_pj:
        terms.append(EnergyTerm("spikes routed", report.spikes_per_sample, profile.spike_pj, source("spike_pj", "")))
    return EnergyEstimate("spiking", profile.name, tuple(terms))


def ann_energy_per_sample(report: AccountingReport, profile: EnergyProfile = HOROWITZ_45NM) -> EnergyEstimate:
    """Energy of one inference of the ANN-equivalent described by `report`: every
    synaptic operation of a conventional network is a MAC."""
    if profile.ann_operations == "dense":
        count, label = report.dense_ops_per_sample, "dense MACs (every connection, zeros included)"
    else:
        count, label = report.synops_per_sample, "effective MACs (zero activations skipped)"
    term = EnergyTerm(label, count, profile.ann_mac_pj, profile.sources.get("ann_mac_pj", ""))
    return EnergyEstimate("ann", profile.name, (term,))


def energy_ratio(ann: EnergyEstimate, spiking: EnergyEstimate) -> float:
    """How many times less energy the spiking model uses than its ANN-equivalent."""
    if spiking.total_pj <= 0:
        return float("nan")
    return ann.total_pj / spiking.total_pj
