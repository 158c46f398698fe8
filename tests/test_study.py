"""The ablation study as a researcher runs it: sweep axes, variants that never blur, statistics,
stale cells, re-pricing, robustness / completion curves and the report's figures."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import chromium, figures_loaded, run_cli

FAST = ["--epochs", "1", "--hidden", "24", "--batch-size", "16", "--max-train-samples", "32", "--threads", "1"]
GRID = ["--modality", "joint", "--memory", "hopfield,cmhan", "--memory-option", "cmhan.coupling=0,1", "--seeds", "2"]
ENERGY_KEYS = ("energy_pj_per_sample", "ann_energy_pj_per_sample", "energy_ratio")


_REGISTERED = []


def _invoke(*args: str) -> str:
    """The CLI in this process (so a monkeypatch reaches it), as `neuromem ARGS`: (exit code, output
    with line wrapping undone)."""
    from typer.testing import CliRunner

    from neuromem.cli import _register_commands, app

    if not _REGISTERED:
        _register_commands()
        _REGISTERED.append(True)
    result = CliRunner().invoke(app, list(args))
    text = result.output + (getattr(result, "stderr", "") if getattr(result, "stderr_bytes", None) else "")
    return result.exit_code, " ".join(text.split()) if "--dry-run" not in args else text, result.exception


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())["cells"]


@pytest.fixture(scope="module")
def grid(tiny_data, tmp_path_factory) -> Path:
    """hopfield x 2 seeds and cmhan coupling 0 / 1 x 2 seeds, all joint: 6 cells."""
    out = tmp_path_factory.mktemp("study") / "run"
    with pytest.MonkeyPatch.context() as patch:  # module scope: the per-test home fixture is not active yet
        patch.setenv("NEUROMEM_HOME", str(tmp_path_factory.getbasetemp() / "neuromem-home"))
        code, output, error = _invoke("ablate", *GRID, "--data-root", str(tiny_data), "--out", str(out), *FAST)
    assert code == 0, (output, error)
    return out


def test_sweep_axes_are_a_product_and_dry_run_lists_each_cell(tiny_data, tmp_path):
    out = tmp_path / "dry"
    code, output, error = _invoke("ablate", "--modality", "shd", "--memory", "hopfield,cmhan", "--memory-option",
                                  "hopfield.beta=1,4,16", "--hidden", "16,24", "--learning-rate", "1e-3", "--seeds", "2",
                                  "--data-root", str(tiny_data), "--out", str(out), "--dry-run")
    assert code == 0, (output, error)
    lines = [line for line in output.splitlines() if line.startswith(("run ", "done"))]
    assert len(lines) == 3 * 2 * 2 + 2 * 2  # hopfield: beta x hidden x seeds; cmhan: hidden x seeds
    hopfield = [line for line in lines if "memory=hopfield" in line]
    assert {re.search(r"variant='([^']*)'", line).group(1) for line in hopfield} == {
        f"hidden={h} learning_rate=0.001 beta={b}" for h in (16, 24) for b in (1, 4, 16)}
    assert all("variant='hidden=" in line and "beta" not in line for line in lines if "memory=cmhan" in line)
    assert len({line.split()[1] for line in lines}) == len(lines)  # distinct cell ids
    assert not out.exists()  # a dry run writes nothing


@pytest.mark.parametrize("args, message", [
    (["--hidden", "16,0"], "--hidden '0' is not valid"),
    (["--learning-rate", "-1"], "--learning-rate '-1' is not valid"),
    (["--time-bins", "0"], "--time-bins '0' is not valid"),
    (["--neuron", "lif,nope"], "--neuron nope is not known"),
    (["--energy-profile", "tpu"], "--energy-profile 'tpu' is not known; valid: horowitz-45nm, loihi"),
    (["--rerun", "all"], "--rerun 'all' is not known; valid: stale"),
    (["--memory-option", "beta=1,,4"], "empty value in the comma list"),
])
def test_bad_sweep_values_are_refused_naming_flag_and_value(tiny_data, tmp_path, args, message):
    from neuromem.errors import NeuromemError

    code, output, error = _invoke("ablate", "--modality", "shd", "--memory", "hopfield", "--data-root", str(tiny_data),
                                  "--out", str(tmp_path / "bad"), "--dry-run", *args)
    assert isinstance(error, NeuromemError) and message in str(error)


def test_a_bad_sweep_value_is_one_line_and_exit_2(tiny_data, tmp_path):
    result = run_cli("ablate", "--modality", "shd", "--memory", "hopfield", "--data-root", str(tiny_data),
                     "--out", str(tmp_path / "bad"), "--dry-run", "--hidden", "16,abc")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--hidden 'abc' is not valid in '16,abc'; expected positive integers" in _one_line(result.stderr)


def test_variants_never_blur(grid):
    rows = list(csv.DictReader((grid / "results.csv").open()))
    assert len(rows) == 6
    variants = {(r["memory"], r["variant"], r["option.coupling"]) for r in rows}
    assert variants == {("hopfield", "hidden=24", ""), ("cmhan", "hidden=24 coupling=0", "0"), ("cmhan", "hidden=24 coupling=1", "1")}
    for column in ("code_fingerprint", "neuromem_version", "energy_profile"):
        assert all(r[column] for r in rows), column
    report = (grid / "report.md").read_text()
    table = report.split("## Test accuracy")[1].split("##")[0]
    body = [line for line in table.splitlines() if line.startswith("| joint")]
    assert len(body) == 3  # one row per (modality, memory, variant), never one averaged row
    header = [c.strip() for c in next(line for line in table.splitlines() if line.startswith("| modality")).strip("|").split("|")]
    n_at, mean_at = header.index("n"), header.index("test accuracy, mean ± std")
    for line in body:
        assert line.strip("|").split("|")[n_at].strip() == "2"  # n = seeds behind the mean
        assert line.strip("|").split("|")[header.index("protocol")].strip() == "the data set's own split"
    by_variant = {}
    for r in rows:
        by_variant.setdefault((r["memory"], r["variant"]), []).append(float(r["test_accuracy"]))
    for line in body:
        cells = [c.strip() for c in line.strip("|").split("|")]
        values = by_variant[(cells[1], cells[2])]
        mean = 100 * sum(values) / 2
        assert cells[mean_at].startswith(f"{mean:.2f}")
    comparisons = report.split("## Paired comparisons")[1].split("##")[0]
    assert "scipy.stats.ttest_rel" in comparisons
    assert len([line for line in comparisons.splitlines() if line.startswith("| joint")]) == 3  # 3 choose 2


def test_statistics_match_a_hand_computation():
    from neuromem.study.stats import paired, summarize

    summary = summarize([0.5, 0.6, 0.7])
    t_975_2df = 4.302652729911275  # Student t quantile, 2 degrees of freedom
    assert summary.n == 3 and summary.mean == pytest.approx(0.6) and summary.std == pytest.approx(0.1)
    assert summary.ci_low == pytest.approx(0.6 - t_975_2df * 0.1 / math.sqrt(3))
    assert summary.ci_high == pytest.approx(0.6 + t_975_2df * 0.1 / math.sqrt(3))
    # differences 0.1, 0.0, 0.2: mean 0.1, sd 0.1, t = 0.1 / (0.1 / sqrt 3) = sqrt 3; with 2 df the t
    # distribution's cdf is 1/2 + t / (2 sqrt(2 + t^2)), so p = 1 - sqrt(3) / sqrt(5)
    result = paired({0: 0.5, 1: 0.6, 2: 0.8, 7: 0.9}, {0: 0.4, 1: 0.6, 2: 0.6})
    assert result.n == 3 and result.seeds == (0, 1, 2)
    assert result.mean_difference == pytest.approx(0.1) and result.t == pytest.approx(math.sqrt(3))
    assert result.p == pytest.approx(1 - math.sqrt(3) / math.sqrt(5))
    assert result.ci_low == pytest.approx(0.1 - t_975_2df * 0.1 / math.sqrt(3))
    single = summarize([0.4])
    assert single.n == 1 and math.isnan(single.ci_low)


def test_report_rebuilds_from_the_store_alone(grid, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(grid, copy)
    for name in ("report.md", "results.csv", "results.json", "report.html"):
        (copy / name).unlink()
    code, output, error = _invoke("report", str(copy))
    assert code == 0, (output, error)
    assert (copy / "report.md").read_text() == (grid / "report.md").read_text()
    assert list(csv.DictReader((copy / "results.csv").open())) == list(csv.DictReader((grid / "results.csv").open()))
    code, output, error = _invoke("report", str(tmp_path / "nowhere"))
    assert "no results.sqlite" in str(error) and not (tmp_path / "nowhere").exists()


def test_stale_cells_are_listed_kept_and_rerun_exactly(grid, tiny_data, tmp_path, monkeypatch):
    import neuromem.train.provenance as provenance

    out = tmp_path / "stale"
    shutil.copytree(grid, out)
    monkeypatch.setattr(provenance, "code_fingerprint", lambda memory=None: "changed-code")
    with sqlite3.connect(out / "results.sqlite") as db:  # four cells as if trained with the changed code
        rows = db.execute("SELECT cell_id, metrics, finished_at FROM cells ORDER BY cell_id").fetchall()
        fresh = {cell_id for cell_id, _, _ in rows[:4]}
        for cell_id, metrics, _ in rows[:4]:
            data = json.loads(metrics)
            data["provenance"]["code_fingerprint"] = "changed-code"
            db.execute("UPDATE cells SET metrics = ? WHERE cell_id = ?", (json.dumps(data), cell_id))
    before = {cell_id: finished for cell_id, _, finished in rows}
    stale = set(before) - fresh
    code, kept, error = _invoke("ablate", *GRID, "--data-root", str(tiny_data), "--out", str(out), *FAST)
    assert code == 0, (kept, error)
    assert "6 already finished, 0 to run" in kept and "2 finished cells were computed with other model code" in kept
    # the stale listing, not the summary table after it (which names every cell in full)
    listed = kept.split("computed with other model code")[1].split("test accuracy")[0]
    assert all(cell_id in listed for cell_id in stale) and not any(cell_id in listed for cell_id in fresh)
    code, rerun, error = _invoke("ablate", *GRID, "--data-root", str(tiny_data), "--out", str(out), *FAST, "--rerun", "stale")
    assert code == 0, (rerun, error)
    assert "4 already finished, 2 to run" in rerun
    with sqlite3.connect(out / "results.sqlite") as db:
        after = dict(db.execute("SELECT cell_id, finished_at FROM cells").fetchall())
        fingerprints = {c: json.loads(m)["provenance"]["code_fingerprint"] for c, m in db.execute("SELECT cell_id, metrics FROM cells")}
    assert {c for c in after if after[c] != before[c]} == stale  # exactly the stale cells re-trained
    assert set(fingerprints.values()) == {"changed-code"}


def test_reprice_changes_energy_and_nothing_else(grid, tiny_data, tmp_path):
    out = tmp_path / "reprice"
    shutil.copytree(grid, out)
    code, output, error = _invoke("reprice", str(out), "--profile", "loihi")
    assert code == 0, (output, error)
    before = {r["cell_id"]: r for r in _rows(grid)}
    after = {r["cell_id"]: r for r in _rows(out)}
    assert before.keys() == after.keys()
    for cell_id, row in after.items():
        changed = {k for k in row if row[k] != before[cell_id].get(k)}
        assert changed, cell_id
        assert all(k.startswith(ENERGY_KEYS) or k in ("energy_assumptions", "energy_profile") for k in changed), changed
        assert row["test_accuracy"] == before[cell_id]["test_accuracy"] and row["energy_profile"] == "loihi"
    # the same cell trained under loihi from the start has the re-priced numbers
    direct = tmp_path / "direct"
    one = ["--modality", "joint", "--memory", "hopfield", "--seeds", "1"]
    code, output, error = _invoke("ablate", *one, "--data-root", str(tiny_data), "--out", str(direct), *FAST,
                                  "--energy-profile", "loihi")
    assert code == 0, (output, error)
    (row,) = _rows(direct)
    for key in (k for k in row if k.startswith(ENERGY_KEYS)):
        assert row[key] == pytest.approx(after[row["cell_id"]][key], rel=1e-9), key
    # asking ablate for another profile re-prices finished cells instead of retraining them
    code, again, error = _invoke("ablate", *one, "--data-root", str(tiny_data), "--out", str(direct), *FAST)
    assert code == 0, (again, error)
    assert "0 to run" in again and "re-priced 1 finished cells under horowitz-45nm" in again
    (back,) = _rows(direct)
    assert back["energy_profile"] == "horowitz-45nm"
    assert back["energy_pj_per_sample"] == pytest.approx(before[row["cell_id"]]["energy_pj_per_sample"], rel=1e-9)


def test_evaluate_writes_curves_figures_and_an_html_report(grid, tmp_path):
    out = tmp_path / "evaluate"
    shutil.copytree(grid, out)
    code, output, error = _invoke("evaluate", str(out), "--robustness", "noise", "--completion", "window")
    assert code == 0, (output, error)
    assert "evaluated 6 cells" in output
    cells = {r["cell_id"]: r for r in _rows(out)}
    evaluations = json.loads((out / "results.json").read_text())["study"]["evaluations"]
    assert {(e["cell_id"], e["evaluation"]) for e in evaluations} == {(c, n) for c in cells for n in ("noise", "window")}
    for e in evaluations:
        assert {"accuracy", "accuracy_nmnist", "accuracy_shd", "nmnist_to_shd_recall@1", "shd_to_nmnist_recall@1"} <= set(e)
        if e["level"] == 0:  # the unperturbed level reproduces the stored test accuracy: the weights reloaded
            assert e["accuracy"] == pytest.approx(cells[e["cell_id"]]["test_accuracy"])
    window_full = [e for e in evaluations if e["evaluation"] == "window" and e["level"] == 0.75]
    assert len(window_full) == 6
    report = (out / "report.md").read_text()
    assert "### robustness: noise" in report and "### completion: window" in report
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert set(figures) == {"figures/accuracy.png", "figures/pareto.png", "figures/robustness-noise.png",
                            "figures/completion-window.png"}
    assert all((out / f).stat().st_size > 1000 for f in figures)
    html = (out / "report.html").read_text()
    assert all(f'src="{f}"' in html for f in figures)
    code, output, error = _invoke("evaluate", str(out), "--robustness", "fog")
    assert "--robustness fog is not known; valid: noise, dropout, jitter" in str(error)
    if chromium() is None:
        pytest.skip("chromium is not installed: the browser check of the figures is skipped")
    assert figures_loaded(out / "report.html", tmp_path) == (len(figures), len(figures))  # every figure loaded


def test_perturbations_are_composable_and_keep_shape():
    import numpy as np

    from neuromem.study.perturb import Compose, CutWindow, EventDropout, EventNoise, MaskRegion, TimeJitter

    rng = np.random.default_rng(0)
    frames = rng.poisson(0.4, (3, 12, 2, 8, 8)).astype(np.uint8)
    channels = rng.poisson(0.4, (3, 12, 40)).astype(np.uint8)
    assert TimeJitter(2.0)(frames, rng).sum() == frames.sum()  # events move, none appear or vanish
    assert EventDropout(0.5)(frames, rng).sum() < frames.sum() < EventNoise(0.5)(frames, rng).sum()
    masked = MaskRegion(0.25)(frames, rng)
    assert masked[:, :, :, 2:6, 2:6].sum() == 0 and (masked[:, :, :, :2] == frames[:, :, :, :2]).all()
    band = MaskRegion(0.5)(channels, rng)
    assert band[:, :, 10:30].sum() == 0 and (band[:, :, :10] == channels[:, :, :10]).all()
    cut = CutWindow(0.25)(channels, rng)
    assert cut[:, 9:].sum() == 0 and (cut[:, :9] == channels[:, :9]).all()
    both = Compose((CutWindow(0.5), MaskRegion(0.5)))(channels, np.random.default_rng(1))
    assert both.shape == channels.shape and both.dtype == channels.dtype and both[:, 6:].sum() == 0
    for level_zero in (EventNoise(0), EventDropout(0), TimeJitter(0), MaskRegion(0), CutWindow(0)):
        assert (level_zero(frames, rng) == frames).all()


@pytest.mark.parametrize("within, between", [(True, True), (True, False), (False, True)])
def test_cmhan_energy_term_ablations_have_exact_gradients(within, between):
    import torch

    from neuromem.memory.functional.cmhan import SettleParameters, energy_gradients, total_energy

    torch.manual_seed(0)
    states = {m: torch.randn(5, 8, dtype=torch.float64, requires_grad=True) for m in ("a", "b")}
    patterns = {m: torch.randn(6, 8, dtype=torch.float64) for m in ("a", "b")}
    associations = {("a", "b"): torch.randn(8, 8, dtype=torch.float64), ("b", "a"): torch.randn(8, 8, dtype=torch.float64)}
    p = SettleParameters(coupling=0.7, within=within, between=between)
    energy = total_energy(states, patterns, associations, p).sum()
    expected = torch.autograd.grad(energy, list(states.values()))
    analytic = energy_gradients({m: h.detach() for m, h in states.items()}, patterns, associations, p)
    for (m, _), grad in zip(states.items(), expected):
        assert torch.allclose(analytic[m], grad)
    only_within = SettleParameters(coupling=0.7, between=False)
    other = {k: torch.randn(8, 8, dtype=torch.float64) for k in associations}
    assert torch.equal(total_energy(states, patterns, associations, only_within),
                       total_energy(states, patterns, other, only_within))  # the coupling is really off


def test_cmhan_cccp_update_is_the_one_step_hopfield_update():
    import torch

    from neuromem.memory import build_memory
    from neuromem.memory.functional.cmhan import SettleParameters, settle

    torch.manual_seed(1)
    states = {"a": torch.randn(4, 8)}
    patterns = {"a": torch.randn(5, 8)}
    cccp = settle(states, patterns, {}, SettleParameters(steps=1, step_size=0.3, update="cccp", tolerance=0))
    hopfield = torch.softmax(states["a"] @ patterns["a"].t() / 0.1, dim=-1) @ patterns["a"]
    assert torch.allclose(cccp.states["a"], hopfield, atol=1e-6)
    with pytest.raises(ValueError, match="terms must be one of both, within, between"):
        build_memory("cmhan", {"a": 8}, terms="neither")
    with pytest.raises(ValueError, match="update must be one of gradient, cccp"):
        build_memory("cmhan", {"a": 8}, update="adam")


def test_pareto_front_keeps_only_undominated_cells():
    from neuromem.study.figures import pareto_front

    points = [(1.0, 50.0), (2.0, 60.0), (3.0, 55.0), (0.5, 40.0), (2.0, 60.0), (4.0, 70.0)]
    assert pareto_front(points) == [3, 0, 1, 4, 5]  # (3, 55) is beaten by (2, 60); ties both stay


def test_code_fingerprint_covers_a_memory_module_and_what_it_imports_only():
    from neuromem.train.provenance import _memory_files, _package_root, code_fingerprint

    root = _package_root()
    names = lambda memory: {p.relative_to(root).as_posix() for p in _memory_files(root, memory)}  # noqa: E731
    assert {"memory/cmhan.py", "memory/functional/cmhan.py", "memory/scl.py"} <= names("cmhan")  # cmhan imports scl
    assert "memory/cmhan.py" not in names("hopfield") and "memory/hopfield.py" not in names("cmhan")
    assert code_fingerprint("cmhan") != code_fingerprint("hopfield") != code_fingerprint()


def test_a_whitespace_only_edit_of_a_memory_module_leaves_its_cells_fresh(tmp_path):
    """The fingerprint reads the parsed code: reformatting, comments and docstrings leave a cell fresh; a change
    of what runs makes it stale (and only the cells of the module changed)."""
    from neuromem.train.provenance import _package_root, code_fingerprint, stale_reason

    root = tmp_path / "neuromem"
    shutil.copytree(_package_root(), root, ignore=shutil.ignore_patterns("__pycache__"))
    stored = {memory: {"code_fingerprint": code_fingerprint(memory, root)} for memory in ("hopfield", "cmhan")}
    fresh = lambda memory: stale_reason(stored[memory], {"code_fingerprint": code_fingerprint(memory, root)})  # noqa: E731
    module = root / "memory" / "hopfield.py"
    source = module.read_text()
    edits = [("    dim: int = 128\n", "    dim  :  int=128   # the width\n\n"),  # spacing, a comment, a blank line
             ("from dataclasses import dataclass\n", "from dataclasses import (\n    dataclass,\n)\n\n\n"),  # re-wrapped
             ('"""`hopfield`: a modern', '"""`hopfield`, reworded: a modern')]  # the module's docstring
    for old, new in edits:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    module.write_text("\n".join(line + "   " for line in source.split("\n")))  # trailing blanks on every line
    code_fingerprint.cache_clear()
    assert fresh("hopfield") is None and fresh("cmhan") is None
    module.write_text(source.replace("num_patterns: int = 64", "num_patterns: int = 65"))
    code_fingerprint.cache_clear()
    assert "model code" in fresh("hopfield") and fresh("cmhan") is None
    code_fingerprint.cache_clear()


def test_default_epochs_come_from_the_data_set_entry_and_the_flag_overrides_them():
    from neuromem.data.registry import get_dataset
    from neuromem.train import sweep
    from neuromem.train.tasks import CROSS_MODAL_EPOCHS, default_epochs

    configs = sweep.expand_grid(["shd", "nmnist", "joint", "parallel"], ["hopfield"], 1, {}, {}, {"epochs": None},
                                epochs_for=default_epochs)
    epochs = {c.modality: c.epochs for c in configs}
    assert epochs["shd"] == get_dataset("shd").spec.epochs == 8
    assert epochs["nmnist"] == get_dataset("nmnist").spec.epochs == 5
    assert epochs["joint"] == epochs["parallel"] == CROSS_MODAL_EPOCHS
    given = sweep.expand_grid(["shd", "nmnist"], ["hopfield"], 1, {}, {}, {"epochs": 2}, epochs_for=default_epochs)
    assert {c.epochs for c in given} == {2}
