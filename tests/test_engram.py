"""Engram alignment: metrics on constructed data, saved-run loading, bad input, the HTML report in a real browser."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import chromium, figures_loaded, headless_chromium

from neuromem.engram import align, canonical_correlations, linear_cka, pair_by_digit, spearman
from neuromem.engram.report import build_report
from neuromem.errors import NeuromemError

PERMUTATIONS = 200


def _prototype_reps(prototypes: np.ndarray, digits: np.ndarray, rng, noise: float = 0.5) -> np.ndarray:
    return prototypes[digits] + noise * rng.standard_normal((len(digits), prototypes.shape[1]))


def _write_cell(run_dir: Path, cell_id: str, config: dict, arrays: dict, metrics: dict | None = None) -> None:
    cell_dir = run_dir / "cells" / cell_id
    cell_dir.mkdir(parents=True)
    (cell_dir / "cell.json").write_text(json.dumps({"config": config, "metrics": metrics or {}}))
    if arrays:
        np.savez(cell_dir / "representations.npz", **arrays)
    (run_dir / "results.json").write_text(json.dumps({"cells": []}))


def _metrics(energy: float, ann: float) -> dict:
    return {
        "test_accuracy": 0.9,
        "activation_sparsity": 0.95,
        "synops_per_sample": 1e5,
        "dense_macs_per_sample": 2e6,
        "energy_pj_per_sample": energy,
        "ann_energy_pj_per_sample": ann,
        "energy_ratio": ann / energy,
        "energy_assumptions": ["spiking energy per sample: test figures"],
        "layer_sparsity": {"frontends.shd.0": 0.97, "frontends.nmnist.0": 0.96, "frontends.nmnist.1": 0.98},
    }


def _modality_arrays(modality: str, reps: np.ndarray, digits: np.ndarray) -> dict:
    labels = digits + 10 * (np.arange(len(digits)) % 2) if modality == "shd" else digits
    return {f"{modality}/representations": reps, f"{modality}/labels": labels, f"{modality}/digits": digits}


@pytest.fixture
def joint_run(tmp_path) -> Path:
    """A joint network whose two modalities share per-digit prototypes (trained to align)."""
    rng = np.random.default_rng(0)
    prototypes = rng.standard_normal((10, 16))
    digits_shd, digits_nmnist = rng.integers(0, 10, 200), rng.integers(0, 10, 150)
    arrays = _modality_arrays("shd", _prototype_reps(prototypes, digits_shd, rng), digits_shd)
    arrays |= _modality_arrays("nmnist", _prototype_reps(prototypes, digits_nmnist, rng), digits_nmnist)
    run = tmp_path / "joint"
    _write_cell(run, "joint-cmhan-s0", {"modality": "joint", "memory": "cmhan", "seed": 0}, arrays, _metrics(2e4, 8e6))
    return run


@pytest.fixture
def parallel_run(tmp_path) -> Path:
    """Two separately trained networks: each modality has its own, unrelated prototypes."""
    rng = np.random.default_rng(1)
    run = tmp_path / "parallel"
    for modality, size in (("nmnist", 150), ("shd", 200)):
        prototypes = rng.standard_normal((10, 16))
        digits = rng.integers(0, 10, size)
        config = {"modality": modality, "memory": "hopfield", "seed": 0}
        arrays = _modality_arrays(modality, _prototype_reps(prototypes, digits, rng), digits)
        _write_cell(run, f"{modality}-hopfield-s0", config, arrays, _metrics(3e4, 8e6))
    baseline = {"modality": "shd", "memory": "hopfield", "seed": 0, "neuron": "dense"}
    digits = rng.integers(0, 10, 100)
    metrics = _metrics(3e4, 8e6) | {"energy_pj_per_sample": float("nan")}
    _write_cell(run, "shd-hopfield-dense-s0", baseline, _modality_arrays("shd", rng.standard_normal((100, 16)), digits), metrics)
    return run


def test_cka_identical_is_one_and_unrelated_near_zero():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 8))
    rotation, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ rotation) == pytest.approx(1.0)  # invariant to rotation and scale
    assert linear_cka(x, rng.standard_normal((1000, 8))) < 0.05


def test_alignment_identical_vs_unrelated_with_p_values():
    rng = np.random.default_rng(0)
    digits = np.repeat(np.arange(10), 30)
    prototypes = rng.standard_normal((10, 12))
    reps = _prototype_reps(prototypes, digits, rng, noise=0.3)
    same = align("nmnist", reps, digits, "shd", reps, digits, permutations=PERMUTATIONS)
    assert same.cka["linear_cka"] == pytest.approx(1.0)
    assert same.rsa["spearman_r"] == pytest.approx(1.0)
    assert same.cca["mean_canonical_correlation"] == pytest.approx(1.0)
    assert same.cosine["matching"] == pytest.approx(1.0)
    assert same.cosine["per_sample_matching"] > same.cosine["per_sample_non_matching"] + 0.5
    for p in (same.cka["p_value"], same.rsa["p_value"], same.cca["p_value"], same.cosine["p_value"]):
        assert p <= 2 / (PERMUTATIONS + 1)
    other = _prototype_reps(rng.standard_normal((10, 12)), digits, rng, noise=0.3)
    unrelated = align("nmnist", reps, digits, "shd", other, digits, permutations=PERMUTATIONS)
    assert abs(unrelated.cosine["difference"]) < 0.3 and unrelated.cosine["p_value"] > 0.05
    assert unrelated.rsa["p_value"] > 0.05 and unrelated.cka["p_value"] > 0.05 and unrelated.cca["p_value"] > 0.05
    # unrelated digit-clustered data sit at their class-permutation chance level, identical far above it
    for measure, key in (("cka", "linear_cka"), ("rsa", "spearman_r"), ("cca", "mean_canonical_correlation")):
        assert abs(getattr(unrelated, measure)[key] - getattr(unrelated, measure)["null_mean"]) < 0.15
        assert getattr(same, measure)[key] > getattr(same, measure)["null_mean"] + 0.2


def test_different_dimensions_skip_cosine_but_keep_cka_rsa_cca():
    rng = np.random.default_rng(2)
    digits = np.repeat(np.arange(10), 20)
    prototypes = rng.standard_normal((10, 6))
    a = _prototype_reps(prototypes, digits, rng, 0.2)
    embedding = np.linalg.qr(rng.standard_normal((9, 9)))[0][:6]  # an isometric map into 9-D
    b = _prototype_reps(prototypes, digits, rng, 0.2) @ embedding
    result = align("nmnist", a, digits, "shd", b, digits, permutations=50)
    assert result.cosine is None and result.class_cosine is None
    assert result.cka["linear_cka"] > 0.9 and result.cka["p_value"] < 0.05
    assert result.cca["mean_canonical_correlation"] > 0.8 and result.cca["p_value"] < 0.05
    assert result.rsa["p_value"] < 0.05
    index_a, index_b = pair_by_digit(digits, digits, np.arange(10), 50)
    direct = canonical_correlations(a[index_a], b[index_b], result.cca["components"])
    assert direct.mean() == pytest.approx(result.cca["mean_canonical_correlation"])


def test_spearman_matches_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(40), rng.standard_normal(40)
    y[:10] = x[:10]  # some ties-free shared structure
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    assert spearman(np.array([1.0, 2, 2, 3]), np.array([1.0, 3, 2, 4])) == pytest.approx(
        spearmanr([1, 2, 2, 3], [1, 3, 2, 4]).statistic
    )


def test_pairing_by_digit_is_deterministic():
    a, b = np.array([1, 0, 1, 2, 0]), np.array([0, 1, 1, 1, 2, 2])
    index_a, index_b = pair_by_digit(a, b, np.array([0, 1, 2]))
    # balanced: digit 2 has one sample in a and digit 0 one in b, so one pair per digit
    assert index_a.tolist() == [1, 0, 3] and index_b.tolist() == [0, 1, 4]
    assert (a[index_a] == b[index_b]).all()


def test_joint_aligns_more_than_parallel(joint_run, parallel_run, tmp_path):
    document = build_report([joint_run, parallel_run], tmp_path / "both" / "report.html", permutations=PERMUTATIONS)
    joint, parallel = document["comparisons"]
    assert (joint["kind"], parallel["kind"]) == ("joint", "parallel")
    assert parallel["cells"] == ["parallel/nmnist-hopfield-s0", "parallel/shd-hopfield-s0"]
    assert document["unpaired_cells"] == ["parallel/shd-hopfield-dense-s0"]  # an ANN cell never pairs with a spiking one
    for measure, key in (("cka", "linear_cka"), ("rsa", "spearman_r"), ("cca", "mean_canonical_correlation")):
        assert joint[measure][key] > parallel[measure][key]
        assert joint[measure]["p_value"] < 0.05
        assert parallel[measure]["p_value"] > 0.05
    assert joint["cosine"]["difference"] > parallel["cosine"]["difference"]
    saved = json.loads((tmp_path / "both" / "engram.json").read_text(), parse_constant=pytest.fail)  # strict JSON
    baseline = next(c for c in saved["cells"] if c["cell"] == "parallel/shd-hopfield-dense-s0")
    assert baseline["metrics"]["energy_pj_per_sample"] is None
    assert saved["comparisons"][0]["cka"] == joint["cka"]
    assert saved["cells"][0]["metrics"]["energy_ratio"] == pytest.approx(400.0)


def test_bad_inputs_name_what_is_needed(tmp_path, joint_run):
    no_reps = tmp_path / "no_reps"
    _write_cell(no_reps, "c0", {"modality": "joint", "memory": "hopfield", "seed": 0}, {})
    with pytest.raises(NeuromemError, match="representations.npz: missing"):
        build_report([no_reps], tmp_path / "r.html")

    one = tmp_path / "one"
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 10, 50)
    _write_cell(one, "shd-only", {"modality": "shd", "memory": "hopfield", "seed": 0},
                _modality_arrays("shd", rng.standard_normal((50, 4)), digits))
    with pytest.raises(NeuromemError, match="only modality shd .* needs both nmnist and shd"):
        build_report([one], tmp_path / "r.html")

    mismatched = tmp_path / "mismatched"
    arrays = _modality_arrays("shd", rng.standard_normal((50, 4)), digits)
    arrays |= _modality_arrays("nmnist", rng.standard_normal((50, 4)), digits % 5)
    _write_cell(mismatched, "joint", {"modality": "joint", "memory": "hopfield", "seed": 0}, arrays)
    with pytest.raises(NeuromemError, match=r"has digits \[0, 1, 2, 3, 4\] but .* has \[0, 1, .*9\]"):
        build_report([mismatched], tmp_path / "r.html")

    with pytest.raises(NeuromemError, match="no cells"):
        build_report([tmp_path / "no_reps" / "cells"], tmp_path / "r.html")
    with pytest.raises(NeuromemError, match="no such run directory"):
        build_report([tmp_path / "absent"], tmp_path / "r.html")


def test_cli_registers_engram_command(joint_run, tmp_path):
    import typer
    from typer.testing import CliRunner

    from neuromem.engram.cli import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:  # a second command keeps typer in multi-command mode, as in neuromem.cli
        pass

    out = tmp_path / "cli" / "report.html"
    result = CliRunner().invoke(app, ["engram", str(joint_run), "--out", str(out), "--permutations", "50"])
    assert result.exit_code == 0, result.output
    assert "CKA" in result.output and out.is_file() and (out.parent / "engram.json").is_file()


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed")
@pytest.mark.parametrize("which", ["joint", "parallel"])
def test_report_renders_all_figures_in_headless_chromium(which, joint_run, parallel_run, tmp_path):
    run = joint_run if which == "joint" else parallel_run
    out = tmp_path / which / "report.html"
    build_report([run], out, permutations=50)
    loaded, total = figures_loaded(out, tmp_path)
    assert total == 5 and loaded == total  # similarity, RDMs, projection, sparsity, energy
    screenshot = tmp_path / f"{which}.png"
    headless_chromium([f"--screenshot={screenshot}", "--window-size=1200,3000", out.resolve().as_uri()], tmp_path)
    from matplotlib.image import imread

    pixels = imread(screenshot)
    assert pixels.shape[0] >= 1000 and pixels[..., :3].std() > 0.05  # not a blank page
