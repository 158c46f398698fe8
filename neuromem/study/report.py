"""results.csv, results.json and report.md, regenerated from the store after every cell
(and by `neuromem report R` from the store alone), with figures and report.html.

Cells are grouped by (modality, memory, variant): a variant is one configuration without its
seed (`CellConfig.variant_digest`), labelled readably (`CellConfig.variant`). Means are taken
only within a group, over its seeds, and every mean says its n.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from neuromem.train.config import VARIANT_FIELDS, CellConfig
from neuromem.study.evaluate import load_evaluations
from neuromem.study.figures import write_figures
from neuromem.study.perturb import EVALUATIONS
from neuromem.study.suites import load_suite_rows
from neuromem.study.suites.report import suite_figures, suite_lines
from neuromem.train.protocol import describe as describe_protocol
from neuromem.study.stats import CONFIDENCE, PAIRED_TEST, paired, summarize
from neuromem.study.store import ResultStore, atomic_write_text

# leading columns, in this order; every other metric follows alphabetically
LEADING_COLUMNS = [
    "cell_id", "modality", "memory", "variant", "neuron", "seed", "status",
    "test_accuracy", "train_accuracy", "activation_sparsity",
    "synops_per_sample", "dense_macs_per_sample", "energy_pj_per_sample", "ann_energy_pj_per_sample", "energy_ratio",
    "energy_profile", "epochs", "hidden", "learning_rate", "time_bins", "batch_size", "max_train_samples", "wall_seconds",
]
CONFIG_COLUMNS = ("modality", "memory", "neuron", "seed", "fold", "epochs", "hidden", "learning_rate", "time_bins",
                  "batch_size", "max_train_samples", "threads")
PROVENANCE_COLUMNS = ("neuromem_version", "code_fingerprint", "data_fingerprint")
HIDDEN_METRICS = {"traceback", "provenance"}
OPTION_PREFIX = "option."


def _senses_of(modality: str) -> tuple[str, ...]:
    """The data sets a cross-modal task (joint, parallel) trains on; () for a single data set (or a
    modality no longer registered: its rows still show, without per-sense columns)."""
    from neuromem.train.tasks import TASKS

    task = TASKS.get(modality)
    return task.datasets if task is not None and len(task.datasets) > 1 else ()


def flat_rows(store: ResultStore) -> list[dict[str, Any]]:
    """One row per stored cell: config fields, `variant`, one `option.<key>` column per memory
    option, provenance, and the metrics (nested ones too; the CSV keeps only scalars)."""
    rows = []
    for record in store.rows():
        config, metrics = record["config"], record["metrics"]
        cell = CellConfig.from_dict(config)
        row = {"cell_id": record["cell_id"], "status": record["status"], "variant": cell.variant,
               "variant_key": cell.variant_digest()[:12]}
        row.update({k: config.get(k) for k in CONFIG_COLUMNS})
        row.update({f"{OPTION_PREFIX}{k}": v for k, v in cell.memory_options})
        row.update({k: v for k, v in (metrics.get("provenance") or {}).items() if k in PROVENANCE_COLUMNS})
        if config.get("data_fingerprint"):
            row["data_fingerprint"] = config["data_fingerprint"]
        row.update({k: v for k, v in metrics.items() if k not in HIDDEN_METRICS})
        row.setdefault("energy_profile", config.get("energy_profile"))
        rows.append(row)
    return rows


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    present = {k for row in rows for k in row if _is_scalar(row[k])}
    lead = [c for c in LEADING_COLUMNS if c in present or c in LEADING_COLUMNS[:10]]
    options = sorted(k for k in present if k.startswith(OPTION_PREFIX))
    provenance = [c for c in PROVENANCE_COLUMNS if c in present]
    return lead + options + sorted(present - set(lead) - set(options) - set(provenance)) + provenance


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


@dataclass
class Group:
    """The cells of one configuration (all its seeds)."""

    modality: str
    memory: str
    variant: str  # readable label, unique within (modality, memory)
    key: str  # variant digest
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.memory} [{self.variant}]"

    def by_seed(self, metric: str) -> dict[Any, float]:
        """metric per repetition: the seed, or (fold, seed) under cross-validation (pairs match on both)."""
        return {_repetition(r): float(r[metric]) for r in self.rows if _number(r.get(metric)) is not None}

    @property
    def protocol(self) -> str:
        return describe_protocol(str(self.rows[0].get("fold") or ""))

    @property
    def folds(self) -> int:
        return len({r.get("fold") for r in self.rows if r.get("fold")})


    def summary(self, metric: str):
        return summarize(list(self.by_seed(metric).values()))


def _repetition(row: dict[str, Any]) -> Any:
    return f"{row['fold']}/s{int(row['seed'])}" if row.get("fold") else int(row["seed"])


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def groups_of(rows: list[dict[str, Any]]) -> list[Group]:
    """Finished cells grouped by (modality, memory, variant digest); labels that would collide
    (configurations differing outside the usual variant fields) name the fields that differ."""
    found: dict[tuple, Group] = {}
    for row in rows:
        if row["status"] != "ok":
            continue
        key = (row["modality"], row["memory"], row["variant_key"])
        found.setdefault(key, Group(row["modality"], row["memory"], row["variant"], row["variant_key"])).rows.append(row)
    by_label: dict[tuple, list[Group]] = defaultdict(list)
    for group in found.values():
        by_label[(group.modality, group.memory, group.variant)].append(group)
    for clashing in by_label.values():
        if len(clashing) > 1:
            fields = [f for f in (*CONFIG_COLUMNS, *VARIANT_FIELDS) if f != "seed"
                      and len({str(g.rows[0].get(f)) for g in clashing}) > 1]
            for group in clashing:
                extra = " ".join(f"{f}={group.rows[0].get(f)}" for f in fields) or group.key
                group.variant = extra if group.variant == "default" else f"{group.variant} {extra}"
    return sorted(found.values(), key=lambda g: (g.modality, g.memory, g.variant))


def _pct(value: float) -> str:
    return "" if not math.isfinite(value) else f"{100 * value:.2f}"


def _mean_std(summary) -> str:
    if summary.n == 0:
        return ""
    if summary.n == 1:
        return _pct(summary.mean)
    return f"{_pct(summary.mean)} ± {_pct(summary.std)}"


def _interval(summary) -> str:
    return f"[{_pct(summary.ci_low)}, {_pct(summary.ci_high)}]" if summary.n >= 2 else "n/a (n = 1)"


def _table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])


def _accuracy_table(groups: list[Group]) -> str:
    """One row per (modality, memory, variant): n, mean ± std, 95% interval, per-sense accuracy."""
    candidates = dict.fromkeys(s for g in groups for s in _senses_of(g.modality))
    senses = [s for s in candidates if any(g.by_seed(f"test_accuracy_{s}") for g in groups if _senses_of(g.modality))]
    held_out = any(g.by_seed("seen_accuracy") for g in groups)
    header = ["modality", "memory", "variant", "protocol", "n", "test accuracy, mean ± std", f"{100 * CONFIDENCE:.0f}% CI",
              *(["seen speakers", "gap (seen − unseen)"] if held_out else []), "train",
              *(f"{s} (joint/parallel)" for s in senses), "seeds"]
    body = []
    for g in groups:
        summary = g.summary("test_accuracy")
        per_sense = [_mean_std(g.summary(f"test_accuracy_{s}")) if s in _senses_of(g.modality) else ""
                     for s in senses]
        seeds = sorted({int(r["seed"]) for r in g.rows})
        protocol = g.protocol + (f", {g.folds} folds" if g.folds else "")
        body.append([g.modality, g.memory, g.variant, protocol, str(summary.n), _mean_std(summary), _interval(summary),
                     *([_mean_std(g.summary("seen_accuracy")), _mean_std(g.summary("speaker_gap"))] if held_out else []),
                     _mean_std(g.summary("train_accuracy")), *per_sense, ",".join(str(s) for s in seeds)])
    return _table(header, body)


def _retrieval_table(groups: list[Group]) -> str:
    keys = sorted({k for g in groups for r in g.rows for k in r if k.startswith("retrieval_") and k.endswith("recall@1")})
    if not keys:
        return ""
    header = ["modality", "memory", "variant", "n", *(k.removeprefix("retrieval_").replace("_", " ") for k in keys)]
    body = [[g.modality, g.memory, g.variant, str(g.summary("test_accuracy").n),
             *(_mean_std(g.summary(k)) for k in keys)] for g in groups if any(g.by_seed(k) for k in keys)]
    return _table(header, body)


def comparisons(groups: list[Group], metric: str = "test_accuracy") -> list[dict[str, Any]]:
    """Every pair of configurations on the same modality, paired over the seeds both have."""
    out = []
    for a, b in combinations(groups, 2):
        if a.modality != b.modality:
            continue
        result = paired(a.by_seed(metric), b.by_seed(metric))
        if result.n == 0:
            continue
        out.append({"modality": a.modality, "a": a.label, "b": b.label, "metric": metric, **result.__dict__})
    return out


def _comparison_table(rows: list[dict[str, Any]]) -> str:
    header = ["modality", "A", "B", "n (seeds)", "A − B (points)", f"{100 * CONFIDENCE:.0f}% CI", "t", "p"]
    body = []
    for c in rows:
        interval = f"[{100 * c['ci_low']:+.2f}, {100 * c['ci_high']:+.2f}]" if c["n"] >= 2 else "n/a (n = 1)"
        if c["n"] >= 2 and math.isfinite(c["p"]):
            t, p = f"{c['t']:.3f}", f"{c['p']:.3g}"
        else:
            t, p = "", "n/a (n < 2)" if c["n"] < 2 else "n/a (identical differences)"
        body.append([c["modality"], c["a"], c["b"], str(c["n"]), f"{100 * c['mean_difference']:+.2f}", interval, t, p])
    return _table(header, body)


def _cost_table(groups: list[Group]) -> str:
    keys = ["activation_sparsity", "synops_per_sample", "energy_pj_per_sample", "ann_energy_pj_per_sample", "energy_ratio"]
    present = [k for k in keys if any(g.by_seed(k) for g in groups)]
    header = ["modality", "memory", "variant", "n", "energy profile", *present]
    body = []
    for g in groups:
        profiles = ",".join(sorted({str(r.get("energy_profile")) for r in g.rows}))
        body.append([g.modality, g.memory, g.variant, str(g.summary("test_accuracy").n), profiles,
                     *(_fmt(g.summary(k).mean) for k in present)])
    return _table(header, body)


# the chip table's columns after accuracy and sparsity: (header, per-sense metric, scale, decimals); operation
# counts first, they are what a chip's energy is made of whichever per-operation figures price them
CHIP_COLUMNS = (
    ("synaptic ops/inference", "loihi_synaptic_ops_per_sample", 1.0, 0),
    ("neuron updates/inference", "loihi_neuron_updates_per_sample", 1.0, 0),
    ("spikes/inference", "loihi_spikes_per_sample", 1.0, 0),
    ("Loihi energy, uJ/inference (Loihi 1 per-op figures)", "loihi_energy_pj_per_sample", 1e-6, 2),
)
CHIP_RESOURCES = (("cores", "loihi_cores"), ("neurons", "loihi_neurons"), ("synapses", "loihi_synapses"))
CHIP_ENERGY = "loihi_energy_pj_per_sample"
TWIN_ENERGY = "ann_energy_pj_per_sample"  # the ANN's dense MACs on conventional hardware (its energy profile's ann_mac_pj)
STUDY_ENERGY_RATIO = 603  # the published study: SNN vs ANN energy on neuromorphic hardware (and > 97% sparsity)
TWIN_NEURON = "dense"  # ablate --dense: the same graph with ReLU units, trained


def _twin_of(group: Group, groups: list[Group]) -> Group | None:
    """The trained ANN twin of a cell: the group of the same modality and memory trained with --dense
    and otherwise trained alike (epochs, width, time bins, learning rate, batch, samples); None if absent or
    ambiguous."""
    def fields(g: Group) -> tuple:
        return tuple(str(g.rows[0].get(f)) for f in CONFIG_COLUMNS if f not in ("modality", "memory", "neuron",
                                                                                  "seed", "threads"))

    twins = [g for g in groups if g.modality == group.modality and g.memory == group.memory
             and g.rows[0].get("neuron") == TWIN_NEURON and fields(g) == fields(group)]
    return twins[0] if len(twins) == 1 else None


def _training_flags(group: Group) -> str:
    """The ablate flags that train a twin alike (only those the cell did not leave at their defaults)."""
    row, defaults = group.rows[0], CellConfig(modality=group.modality, memory=group.memory)
    flags = {"epochs": "--epochs", "hidden": "--hidden", "time_bins": "--time-bins", "learning_rate": "--learning-rate",
             "batch_size": "--batch-size", "max_train_samples": "--max-train-samples"}
    # epochs always: ablate's default depends on the data set, not on CellConfig
    return "".join(f" {flag} {row[f]}" for f, flag in flags.items()
                   if row.get(f) not in (None, "") and (f == "epochs" or str(row[f]) != str(getattr(defaults, f, None))))


def _chip_senses(group: Group) -> list[str]:
    """The senses a cell's chip costs were recorded for (one chain each: `<metric>_<sense>`); [""] for a store
    written before per-sense keys (the plain metric names)."""
    prefix = CHIP_ENERGY + "_"
    senses = sorted({k[len(prefix):] for r in group.rows for k in r if k.startswith(prefix) and _number(r[k]) is not None})
    return senses or [""]


def _per_sense(metric: str, sense: str) -> str:
    return f"{metric}_{sense}" if sense else metric


def _chip_row(g: Group, sense: str, twin: Group | None) -> list[str]:
    """One sense of a Loihi cell: accuracy, sparsity, operation counts, energy, the trained twin and the ratio."""
    mean = lambda group, metric: group.summary(_per_sense(metric, sense)).mean if group.by_seed(_per_sense(metric, sense)) else None
    chip = mean(g, CHIP_ENERGY)
    # the trained twin's dense MACs; without one, the same graph's (dense MACs do not depend on training)
    ann = mean(twin, TWIN_ENERGY) if twin is not None else None
    ann_text = f"{ann * 1e-6:,.2f}" if ann is not None else ""
    if ann is None and mean(g, TWIN_ENERGY) is not None:
        ann = mean(g, TWIN_ENERGY)
        ann_text = f"{ann * 1e-6:,.2f} (untrained graph)"
    ratio = f"{ann / chip:.3g}x" if ann is not None and chip else ""
    return [g.modality, sense or g.modality, g.memory, g.variant, str(g.summary(_per_sense("test_accuracy", sense)).n),
            _mean_std(g.summary(_per_sense("test_accuracy", sense))),
            _fmt(mean(g, "activation_sparsity")),
            *(f"{v * scale:,.{digits}f}" if (v := mean(g, key)) is not None else "" for _, key, scale, digits in CHIP_COLUMNS),
            _mean_std(twin.summary(_per_sense("test_accuracy", sense))) if twin else "not trained",
            ann_text, ratio, f"{STUDY_ENERGY_RATIO}x",
            *(f"{v:,.0f}" if (v := mean(g, key)) is not None else "" for _, key in CHIP_RESOURCES)]


def _ann_mac_source(rows: list[dict[str, Any]]) -> str:
    """Where the ANN's per-MAC energy of these cells' energy profiles comes from ("" if unknown or several)."""
    from neuromem.accounting.energy import PROFILES

    sources = {PROFILES[p].sources.get("ann_mac_pj", "") for p in {r.get("energy_profile") for r in rows} if p in PROFILES}
    return sources.pop() if len(sources) == 1 else ""


def _loihi_lines(groups: list[Group]) -> list[str]:
    """Cells that run on the chip, one row per sense (a joint cell's senses each run their own chain through the
    one shared memory): operation counts, the chip's energy, and the trained ANN twin's accuracy and energy."""
    chip = [g for g in groups if any(k.startswith(CHIP_ENERGY) and _number(v) is not None for r in g.rows
                                     for k, v in r.items())]
    if not chip:
        return []
    header = ["modality", "sense", "memory", "variant", "n", "test accuracy", "activation sparsity",
              *(c[0] for c in CHIP_COLUMNS), "trained ANN twin: test accuracy",
              "ANN twin energy, uJ/inference (dense MACs)", "ANN / Loihi energy", "the study's ratio",
              *(h for h, _ in CHIP_RESOURCES)]
    body, missing = [], []
    for g in chip:
        twin = _twin_of(g, groups)
        if twin is None:
            missing.append(g)
        body += [_chip_row(g, sense, twin) for sense in _chip_senses(g)]
    assumptions = next((v for g in chip for r in g.rows for k, v in sorted(r.items())
                        if k.startswith("loihi_energy_assumptions") and v), None) or []
    ann_source = _ann_mac_source([r for g in chip for t in (_twin_of(g, groups) or g,) for r in t.rows])
    lines = ["## Loihi: cells that run on the chip", "",
             "One row per sense: a joint cell's senses each run their own chain of Loihi layers (front end, the "
             "shared memory's layers, readout) alone. Operation counts per inference are the primary quantity: "
             "synaptic operations (each spike times its fan-out, recurrent included) and neuron updates (every "
             "neuron, every time step), counted from the cell's chain run on the accounting samples. Energy prices "
             "them with **Loihi 1's measured per-operation energies** (Davies et al., IEEE Micro 2018); Intel has "
             "not published per-operation energies for Loihi 2, so these figures are Loihi 1's, not a Loihi 2 "
             "measurement. Cores: Loihi 2's per-core limits. The ANN twin is the same graph with ReLU units "
             "(`--dense`), trained alike; its energy is its dense MACs on conventional hardware"
             + (f" ({ann_source})" if ann_source else "")
             + f". The published study reports {STUDY_ENERGY_RATIO}x (SNN vs ANN energy) at > 97% sparsity. "
             "Assumptions:", ""]
    lines += [f"- {a}" for a in assumptions] + ["", _table(header, body), ""]
    if missing:
        lines += ["Trained ANN twin (same graph, ReLU units): "
                  + "; ".join(f"`neuromem ablate --modality {g.modality} --memory {g.memory} --dense"
                              f"{_training_flags(g)}` into the same --out" for g in missing) + ".", ""]
    return lines


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def _provenance_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Cells per (memory, version, model-code fingerprint). Each memory module has its own fingerprint (its code and
    the code it shares), so several fingerprints in one grid are normal; a cell is stale only when its fingerprint
    differs from what its memory's code gives today."""
    from neuromem.train.provenance import current_provenance, stale_reason

    ok = [r for r in rows if r["status"] == "ok"]
    fingerprints = defaultdict(int)
    stale: dict[str, list[str]] = defaultdict(list)
    current: dict[str, dict[str, Any]] = {}
    for r in ok:
        memory = r.get("memory") or "?"
        fingerprints[(memory, r.get("neuromem_version") or "?", r.get("code_fingerprint") or "not recorded")] += 1
        if memory not in current:
            try:
                current[memory] = current_provenance(memory)
            except Exception:  # noqa: BLE001 - a memory not registered here: its cells cannot be judged
                current[memory] = {}
        stored = {k: r[k] for k in ("code_fingerprint", "neuromem_version") if r.get(k)}
        if current[memory] and stale_reason(stored or None, current[memory]):
            stale[memory].append(r.get("cell_id", "?"))
    if not fingerprints:
        return []
    lines = ["## Provenance", "", "Cells per (memory, neuromem version, model-code fingerprint; each memory has its own):", ""]
    lines += [f"- {memory}, {version}, `{fingerprint}`: {count}"
              for (memory, version, fingerprint), count in sorted(fingerprints.items())]
    if stale:
        count = sum(len(ids) for ids in stale.values())
        lines += ["", f"{count} cells were computed with model code that has changed since "
                      f"({', '.join(f'{m}: {len(ids)}' for m, ids in sorted(stale.items()))}): "
                      "`neuromem ablate ... --rerun stale` re-trains them."]
    return lines + [""]


def build_report(store: ResultStore) -> dict[str, Any]:
    """Everything the report shows, as data (also written to results.json under "study")."""
    rows = flat_rows(store)
    groups = groups_of(rows)
    return {"rows": rows, "groups": groups, "comparisons": comparisons(groups)}


def write_reports(store: ResultStore, figures: bool = True) -> dict[str, Path]:
    """Regenerate every output from the store; `figures=False` (between cells of a running grid) keeps
    the figures of the last full write instead of redrawing them."""
    study = build_report(store)
    rows, groups = study["rows"], study["groups"]
    info = store.run_info()
    out = store.out_dir
    columns = _columns(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows([{k: v for k, v in row.items() if _is_scalar(v)} for row in rows])
    atomic_write_text(out / "results.csv", buffer.getvalue())
    summaries = [{"modality": g.modality, "memory": g.memory, "variant": g.variant, "variant_key": g.key,
                  **{f"test_accuracy_{k}": v for k, v in g.summary("test_accuracy").__dict__.items()}} for g in groups]
    payload = {**info, "cells": rows, "study": {"groups": summaries, "comparisons": study["comparisons"],
                                                "paired_test": PAIRED_TEST, "evaluations": load_evaluations(store),
                                                "memory_suites": load_suite_rows(store)}}
    atomic_write_text(out / "results.json", json.dumps(payload, indent=2, default=_json_default))
    failed = [r for r in rows if r["status"] != "ok"]
    report = [
        "# neuromem ablation report",
        "",
        f"Data: **{info.get('data', '?')}** ({info.get('data_root', '?')}). Cells finished: "
        f"{len(rows) - len(failed)}; failed: {len(failed)}.",
        "",
        "## Test accuracy (%) per configuration",
        "",
        f"One row per (modality, memory, variant); n is the number of seeds (times folds, under cross-validation) "
        "behind each mean; the protocol says what the test set is: the data set's own split, or, leaving one "
        "speaker out, every recording of a speaker the cell never heard (seen speakers: held-out recordings of "
        "the speakers it trained on); std is the sample "
        f"standard deviation; the {100 * CONFIDENCE:.0f}% interval of the mean is Student's t with n − 1 degrees of "
        "freedom. Different variants are never averaged together.",
        "",
        _accuracy_table(groups),
        "",
    ]
    retrieval = _retrieval_table(groups)
    if retrieval:
        report += ["## Cross-modal recall@1, mean ± std over seeds", "", retrieval, ""]
    if study["comparisons"] and all(c["n"] < 2 for c in study["comparisons"]):
        report += [
            "## Paired comparisons of test accuracy",
            "",
            f"None here: a paired comparison needs at least 2 seeds that both configurations have, and these "
            f"{len(study['comparisons'])} pairs share {max(c['n'] for c in study['comparisons'])} "
            "(re-run with `--seeds 2` or more into the same --out to add them).",
            "",
        ]
    elif study["comparisons"]:
        report += [
            "## Paired comparisons of test accuracy",
            "",
            f"Every pair of configurations on the same modality, over the seeds both have. Test: {PAIRED_TEST}; "
            f"the {100 * CONFIDENCE:.0f}% interval is that of the mean difference (Student's t, n − 1 df). Seed k fixes "
            "the training subset and batch order, so both configurations of a pair saw the same data. "
            "p-values are not corrected for multiple comparisons.",
            "",
            _comparison_table(study["comparisons"]),
            "",
        ]
    report += ["## Cost, mean over seeds", "", _cost_table(groups), ""]
    report += _loihi_lines(groups)
    evaluations = load_evaluations(store)
    report += _evaluation_lines(groups, evaluations)
    suite_rows = load_suite_rows(store)  # capacity, retention, interference, few-shot (neuromem.study.suites)
    report += suite_lines(groups, suite_rows)
    figures = write_figures(out, groups, evaluations) + suite_figures(out, groups, suite_rows) if figures else []
    if figures:
        report += ["## Figures", ""]
        report += [f"![{title}]({path.relative_to(out).as_posix()})" for title, path in figures] + [""]
    report += _provenance_lines(rows)
    if failed:
        report += ["## Failed cells", ""] + [f"- `{r['cell_id']}`: {r.get('error', '')}" for r in failed] + [""]
    atomic_write_text(out / "report.md", "\n".join(report))
    atomic_write_text(out / "report.html", markdown_to_html(report, "neuromem ablation report"))
    return {"csv": out / "results.csv", "json": out / "results.json", "report": out / "report.md",
            "html": out / "report.html"}


def _evaluation_lines(groups: list[Group], evaluations: list[dict[str, Any]]) -> list[str]:
    """One table per evaluation: accuracy (%) per configuration and level, mean over seeds (n)."""
    if not evaluations:
        return []
    label_of = {r["cell_id"]: g for g in groups for r in g.rows}
    lines = ["## Robustness and pattern completion", "",
             "Accuracy (%) on perturbed test inputs (each data set perturbed alone, mean over data sets), "
             "mean ± std over seeds (n); recall@1 of perturbed cues for two-sense cells is in results.json "
             "(`study.evaluations`) and in the figures. Perturbations: `neuromem.study.perturb`.", ""]
    names = sorted({e["evaluation"] for e in evaluations}, key=lambda n: (EVALUATIONS[n].kind, n) if n in EVALUATIONS else ("", n))
    for name in names:
        rows = [e for e in evaluations if e["evaluation"] == name and e["cell_id"] in label_of]
        levels = sorted({e["level"] for e in rows})
        spec = EVALUATIONS.get(name)
        lines += [f"### {spec.kind if spec else 'evaluation'}: {name} ({spec.level_name if spec else 'level'})", ""]
        body = []
        for g in groups:
            mine = [e for e in rows if label_of[e["cell_id"]] is g]
            if not mine:
                continue
            cells = [_mean_std(summarize([e["accuracy"] for e in mine if e["level"] == lvl])) for lvl in levels]
            body.append([g.modality, g.memory, g.variant, str(len({e["cell_id"] for e in mine})), *cells])
        lines += [_table(["modality", "memory", "variant", "n", *(f"{lvl:g}" for lvl in levels)], body), ""]
    return lines


HTML_CHECK_SCRIPT = """
window.addEventListener('load',function(){var imgs=document.images,ok=0;
for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0)ok++;}
document.body.setAttribute('data-figures',ok+'/'+imgs.length);});
"""
HTML_STYLE = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:24px auto;color:#222;padding:0 12px}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}
th{background:#f0f0f0}img{max-width:100%;display:block;margin:8px 0}code{background:#f4f4f4}"""


def markdown_to_html(lines: list[str], title: str) -> str:
    """The report's own markdown (headings, paragraphs, lists, pipe tables, images) as one HTML page;
    figures are embedded by relative path, and <body data-figures="loaded/total"> is set once they load."""
    import html
    import re

    def inline(text: str) -> str:
        text = html.escape(text)
        text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
        return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)

    body, table = [], []

    def flush() -> None:
        if table:
            rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table if not set(line) <= set("|-")]
            body.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in rows[0]) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
                        + "</table>")
            table.clear()

    for line in "\n".join(lines).splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        image = re.fullmatch(r"!\[(.*)\]\((.*)\)", line.strip())
        if image:
            body.append(f'<figure><img src="{html.escape(image.group(2))}" alt="{html.escape(image.group(1))}">'
                        f"<figcaption>{inline(image.group(1))}</figcaption></figure>")
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("- "):
            body.append(f"<li>{inline(line[2:])}</li>")
        elif line.strip():
            body.append(f"<p>{inline(line)}</p>")
    flush()
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{HTML_STYLE}</style></head><body>\n" + "\n".join(body)
            + f"\n<script>{HTML_CHECK_SCRIPT}</script></body></html>\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return float(value)
