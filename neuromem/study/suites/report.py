"""The memory suites in the report: one table per (suite, curve) and one figure per suite (a panel per curve,
a line per configuration: mean over seeds, error bars the std over seeds)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

DASHED = {"interference": "task1_accuracy_without_writes"}  # drawn beside the value, dashed: without test-time writes


def _by_label(groups, rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, list[dict[str, Any]]]]]:
    """suite -> curve -> configuration label -> rows (cells of configurations no longer in the store are left out)."""
    label_of = {r["cell_id"]: f"{g.modality} {g.label}" for g in groups for r in g.rows}
    out: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for row in rows:
        if row["cell_id"] in label_of:
            out[row["suite"]][row["curve"]][label_of[row["cell_id"]]].append(row)
    return out


def _cell(values: list[float], percent: bool = True) -> str:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return ""
    scale = 100 if percent else 1
    mean = f"{scale * np.mean(values):.1f}" if percent else f"{np.mean(values):.3g}"
    if len(values) == 1:
        return mean
    spread = f"{scale * np.std(values, ddof=1):.1f}" if percent else f"{np.std(values, ddof=1):.2g}"
    return f"{mean} ± {spread}"


def suite_lines(groups, rows: list[dict[str, Any]]) -> list[str]:
    from neuromem.study.report import _table
    from neuromem.study.suites import SUITE_NAMES, suites

    if not rows:
        return []
    registry = suites()
    found = _by_label(groups, rows)
    lines = ["## What a memory can do: capacity, retention, interference, few-shot", "",
             "From `neuromem evaluate RUN --capacity --retention --interference --few-shot` (`neuromem.study.suites`, "
             "whose modules say each protocol in full). Values in %, mean ± std over seeds; n: cells. Every draw is "
             "seeded by (cell seed, suite, curve, level).", ""]
    for name in [n for n in SUITE_NAMES if n in found]:
        suite = registry[name]
        lines += [f"### {suite.title}", "", suite.about, ""]
        for curve, by_label in sorted(found[name].items()):
            levels = sorted({r["level"] for rs in by_label.values() for r in rs})
            extra = [k for k in suite.summary_keys if any(k in r for rs in by_label.values() for r in rs)]
            header = ["configuration", "n", *(f"{lvl:g}" for lvl in levels), *(f"{k} (last level)" for k in extra)]
            body = []
            for label, mine in sorted(by_label.items()):
                last = [r for r in mine if r["level"] == max(r["level"] for r in mine)]
                body.append([label, str(len({r["cell_id"] for r in mine})),
                             *(_cell([r["value"] for r in mine if r["level"] == lvl]) for lvl in levels),
                             *(_cell([r.get(k) for r in last], percent=k != "theory_load") for k in extra)])
            lines += [f"{curve}: {suite.value_name(curve)} against {suite.level_name(curve)}.", "", _table(header, body), ""]
        notes = sorted({r["rule"] for rs in found[name].values() for mine in rs.values() for r in mine if r.get("rule")})
        theory = sorted({r["theory"] for rs in found[name].values() for mine in rs.values() for r in mine if r.get("theory")})
        lines += [f"- retrieval rule: {n}" for n in notes] + [f"- theory: {t}" for t in theory] + ([""] if notes or theory else [])
    return lines


def suite_figures(out: Path, groups, rows: list[dict[str, Any]]) -> list[tuple[str, Path]]:
    from neuromem.study.figures import FIGURES_DIR, _pyplot, _save
    from neuromem.study.suites import SUITE_NAMES, suites

    registry = suites()
    found = _by_label(groups, rows)
    made = []
    for name in [n for n in SUITE_NAMES if n in found]:
        suite, curves = registry[name], sorted(found[name])
        plt = _pyplot()
        figure, axes = plt.subplots(1, len(curves), figsize=(5.6 * len(curves), 4.2), squeeze=False)
        colours = plt.get_cmap("tab10")
        labels = sorted({label for curve in curves for label in found[name][curve]})
        for ax, curve in zip(axes[0], curves):
            for label, mine in sorted(found[name][curve].items()):
                colour = colours(labels.index(label) % 10)
                levels = sorted({r["level"] for r in mine})
                series = [("value", "-", label)]
                if any(DASHED.get(name, "") in r for r in mine):
                    series.append((DASHED[name], "--", f"{label}, without test-time writes"))
                for key, style, text in series:
                    values = [[r[key] for r in mine if r["level"] == lvl and key in r] for lvl in levels]
                    ax.errorbar(levels, [100 * np.mean(v) for v in values],
                                yerr=[100 * np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values],
                                ls=style, marker="o", ms=3, capsize=3, color=colour,
                                label=f"{text} (n={len({r['cell_id'] for r in mine})})")
                chance = [r["chance"] for r in mine if "chance" in r]
                if chance:
                    ax.plot(levels, [100 * np.mean([r["chance"] for r in mine if r["level"] == lvl]) for lvl in levels],
                            ls=":", color="grey", lw=1)
                theory = [r["theory_load"] for r in mine if r.get("theory_load")]
                if theory:
                    ax.axvline(float(np.mean(theory)), ls="-.", color=colour, lw=1,
                               label=f"{label}: theory, >= {np.mean(theory):.3g} P/d stored")
            if suite.log_x(curve):
                ax.set_xscale("log")
            every_level = sorted({r["level"] for mine in found[name][curve].values() for r in mine})
            if len(every_level) <= 6:
                ax.set_xticks(every_level)
            ax.set_title(curve + ("" if name != "capacity" or curve == "n-way" or any(
                r.get("theory_load") for mine in found[name][curve].values() for r in mine)
                else " (theorem's condition fails: no bound)"), fontsize=9)
            ax.set_xlabel(suite.level_name(curve), fontsize=8)
            ax.set_ylabel(f"{suite.value_name(curve)} (%)", fontsize=8)
            ax.set_ylim(0, 100)
            ax.legend(fontsize=6)
        figure.suptitle(f"{suite.title}, mean ± std over seeds", y=1.03)
        made.append((f"Memory suite: {name}", _save(figure, Path(out) / FIGURES_DIR / f"suite-{name}.png")))
    return made
