"""The memory suites (capacity, retention, interference, few-shot) on tiny finished cells: curves in the store,
tables and one figure each in the report (loaded in headless Chromium), resumable re-runs, seeded numbers."""

from __future__ import annotations

import json
import math
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import chromium, figures_loaded

FAST = ["--epochs", "1", "--hidden", "16", "--batch-size", "16", "--threads", "1"]
SUITE_FLAGS = ["--capacity", "--retention", "--interference", "--few-shot", "--suite-epochs", "1", "--episodes", "3"]
_REGISTERED = []


def _invoke(*args: str):
    from typer.testing import CliRunner

    from neuromem.cli import _register_commands, app

    if not _REGISTERED:
        _register_commands()
        _REGISTERED.append(True)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split()), result.exception


def _suite_rows(out: Path) -> list[tuple]:
    with sqlite3.connect(out / "results.sqlite") as db:
        return db.execute("SELECT cell_id, suite, curve, level, metrics FROM suite_results ORDER BY 1, 2, 3, 4").fetchall()


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory) -> Path:
    """hopfield (associative) and ttt (test-time writes) on nmnist and shd: 4 tiny cells."""
    out = tmp_path_factory.mktemp("suites") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEUROMEM_HOME", str(tmp_path_factory.getbasetemp() / "neuromem-home"))
        code, output, error = _invoke("ablate", "--modality", "nmnist,shd", "--memory", "hopfield,ttt",
                                      "--data-root", str(tiny_data), "--out", str(out), *FAST)
    assert code == 0, (output, error)
    return out


@pytest.fixture(scope="module")
def evaluated(run, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("suites-evaluated") / "run"
    shutil.copytree(run, out)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEUROMEM_HOME", str(tmp_path_factory.getbasetemp() / "neuromem-home"))
        code, output, error = _invoke("evaluate", str(out), *SUITE_FLAGS)
    assert code == 0, (output, error)
    return out, output


def test_every_suite_writes_its_curves_into_the_store(evaluated):
    out, output = evaluated
    cells = {r["cell_id"]: r for r in json.loads((out / "results.json").read_text())["cells"]}
    rows = json.loads((out / "results.json").read_text())["study"]["memory_suites"]
    assert {(r["cell_id"], r["suite"]) for r in rows} == {(c, s) for c in cells
                                                         for s in ("capacity", "retention", "interference", "few-shot")}
    assert "memory suites (capacity, retention, interference, few-shot): 16 (cell, suite) results" in output
    for cell_id, cell in cells.items():
        mine = [r for r in rows if r["cell_id"] == cell_id]
        curve = lambda suite, name: {r["level"]: r for r in mine if r["suite"] == suite and r["curve"] == name}  # noqa: E731
        classes = 10 if cell["modality"] == "nmnist" else 20
        n_way = curve("capacity", "n-way")
        assert sorted(n_way) == list(range(2, classes + 1))
        assert all(0 <= r["value"] <= 1 and r["chance"] == pytest.approx(1 / r["level"]) for r in n_way.values())
        patterns = curve("capacity", "patterns noise=0.1")
        if cell["memory"] == "hopfield":  # declares an associative recall: the capacity curve against load
            assert sorted(patterns) == [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
            assert all(r["dim"] == 128 and r["patterns"] == max(2, round(r["level"] * 128)) for r in patterns.values())
            assert "hopfield_retrieve" in patterns[1.0]["rule"]
        else:
            assert not patterns
            assert f"{cell_id} capacity: {classes - 1} rows (n-way); memory 'ttt' declares no associative recall" in output
        silence = curve("retention", "silence")
        assert sorted(silence) == [0.0, 0.25, 0.5, 1.0, 2.0]
        # no delay: the trainer's own test accuracy (weights reloaded, the same batches)
        assert silence[0.0]["value"] == pytest.approx(cell["test_accuracy"])
        steps = 30 if cell["modality"] == "nmnist" else 100
        assert silence[2.0][f"delay_bins_{cell['modality']}"] == 2 * steps
        incremental = curve("interference", "class-incremental")
        assert sorted(incremental) == [1.0, 2.0]
        after = incremental[2.0]
        assert after["forgetting"] == pytest.approx(incremental[1.0]["task1_accuracy"] - after["task1_accuracy"])
        assert after["average_accuracy"] == pytest.approx((after["task1_accuracy"] + after["task2_accuracy"]) / 2)
        assert ("forgetting_without_writes" in after) == (cell["memory"] == "ttt")  # only a memory that writes
        domain = curve("interference", "domain-incremental")
        if cell["modality"] == "shd":
            assert sorted(domain) == [1.0, 2.0] and domain[1.0]["tasks"].startswith("English then German")
            assert incremental[1.0]["tasks"] == "concepts 0-4 then 5-9"
        else:
            assert not domain and "nmnist declares one domain" in output
        for setting in ("held-out classes", "trained classes"):
            shots = curve("few-shot", setting)
            assert sorted(shots) == [1.0, 5.0]  # k = 10: the tiny data sets hold fewer samples per class
            assert all(r["episodes"] == 3 and 0 <= r["value"] <= 1 for r in shots.values())
        held_out = curve("few-shot", "held-out classes")[1.0]
        assert held_out[f"ways_{cell['modality']}"] == classes // 2


def test_the_report_shows_every_suite_and_chromium_loads_every_figure(evaluated, tmp_path):
    out, _ = evaluated
    report = (out / "report.md").read_text()
    assert "## What a memory can do: capacity, retention, interference, few-shot" in report
    for title in ("### Capacity", "### Retention", "### Interference and continual learning", "### Few-shot"):
        assert title in report
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    suite_figures = [f for f in figures if f.startswith("figures/suite-")]
    assert sorted(suite_figures) == ["figures/suite-capacity.png", "figures/suite-few-shot.png",
                                     "figures/suite-interference.png", "figures/suite-retention.png"]
    assert all((out / f).stat().st_size > 5000 for f in suite_figures)
    html = (out / "report.html").read_text()
    assert all(f'src="{f}"' in html for f in suite_figures)
    if chromium() is None:
        pytest.skip("chromium is not installed: the browser check of the figures is skipped")
    loaded, total = figures_loaded(out / "report.html", tmp_path)
    assert total == len(figures) and loaded == total  # every figure, the four suites' among them, loaded


def test_a_rerun_keeps_the_stored_rows_and_a_recomputed_suite_gives_the_same_numbers(evaluated, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(evaluated[0], out)
    before = _suite_rows(out)
    code, output, error = _invoke("evaluate", str(out), "--capacity", "--few-shot", "--episodes", "3")
    assert code == 0, (output, error)
    assert output.count("already in the store (kept)") == 8 and _suite_rows(out) == before
    with sqlite3.connect(out / "results.sqlite") as db:
        db.execute("DELETE FROM suite_results WHERE suite IN ('capacity', 'interference', 'few-shot')")
    code, output, error = _invoke("evaluate", str(out), "--capacity", "--interference", "--few-shot",
                                  "--suite-epochs", "1", "--episodes", "3")
    assert code == 0, (output, error)
    assert _suite_rows(out) == before  # seeded by (cell seed, suite, curve, level): the same numbers


def test_bad_input_is_one_line(run, tmp_path):
    code, output, error = _invoke("evaluate", str(run))
    assert "nothing to evaluate" in str(error) and "--capacity, --retention, --interference, --few-shot" in str(error)
    code, output, error = _invoke("evaluate", str(run), "--capacity", "--suite-epochs", "0")
    assert code == 2 and "--suite-epochs" in output
    empty = tmp_path / "broken"
    shutil.copytree(run, empty)
    for cell in (empty / "cells").iterdir():
        (cell / "model.pt").unlink()
    code, output, error = _invoke("evaluate", str(empty), "--retention")
    assert "no model.pt" in output and "no cell of" in str(error)


def test_modern_hopfield_bound_reproduces_the_papers_example_and_refuses_outside_its_condition():
    from neuromem.study.suites.capacity import theory_patterns

    # Ramsauer et al. 2020, Theorem 3's example: beta = 1, K = 3, d = 20, p = 0.001 gives c = 3.1546
    d, k = 20, 3.0
    assert theory_patterns(d, 1.0, k * math.sqrt(d - 1)) == pytest.approx(math.sqrt(0.001) * 3.1546 ** ((d - 1) / 4), rel=1e-3)
    assert theory_patterns(128, 4.0, 1.0) is None  # beta K^2 too small: c below (2 / sqrt p)^(4 / (d - 1))


def test_associative_recall_is_the_memorys_own_rule_and_load_breaks_it():
    from neuromem.memory import build_memory

    torch.manual_seed(0)
    memory = build_memory("hopfield", {"a": 8}, dim=32, beta=8.0)
    recall = memory.associative_recall()
    assert recall.beta == pytest.approx(8.0) and recall.dim == 32
    cue = torch.randn(3, 32)
    patterns = memory.patterns.detach()
    expected = torch.softmax(8.0 * cue @ patterns.T, dim=-1) @ patterns
    assert torch.allclose(recall.recall(cue, patterns), expected, atol=1e-6)
    assert build_memory("cmhan", {"a": 8}, terms="between").associative_recall() is None
    assert build_memory("hgrn", {"a": 8}).associative_recall() is None

    def retrieved(count: int, radius: float) -> float:
        rows = capacity.stored_pattern_rows(recall, count, radius, noise=0.3, seed=1)
        return rows["retrieval"]

    from neuromem.study.suites import capacity

    # well separated (beta |x|^2 = 72): every pattern retrieved; small norm (beta |x|^2 = 2): the update pulls every
    # cue toward the patterns' mean, and more patterns only make it worse
    assert retrieved(8, 3.0) == 1.0 and retrieved(512, 0.5) == 0.0


def test_prototype_classifier_and_delay_transform():
    from neuromem.study.suites.context import prototype_accuracy
    from neuromem.study.suites.retention import _with_delay

    support = np.array([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 3.0]])
    queries = np.array([[5.0, 1.0], [0.2, 4.0], [1.0, 1.1]])
    assert prototype_accuracy(support, np.array([0, 0, 1, 1]), queries, np.array([0, 1, 1])) == 1.0
    x = torch.ones(2, 4, 3)
    silent = _with_delay(5, None, torch.Generator().manual_seed(0))(x, np.arange(2))
    assert silent.shape == (2, 9, 3) and silent[:, 4:].sum() == 0 and torch.equal(silent[:, :4], x)
    noisy = _with_delay(50, torch.full((1, 1, 3), 2.0), torch.Generator().manual_seed(0))(x, np.arange(2))
    assert noisy[:, 4:].mean().item() == pytest.approx(2.0, abs=0.3)
