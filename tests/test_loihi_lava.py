"""A trained SHD-shaped Loihi model runs bit-exact on Lava (Loihi2SimCfg fixed_pt) through the subprocess bridge."""

import numpy as np
import pytest
import torch

from neuromem.errors import NeuromemError
from neuromem.export.hardware import verify_on_lava
from neuromem.export.lava import export_lava
from neuromem.export.model import train_loihi_model
from neuromem.export.hardware import LAVA_PYTHON_ENV, lava_available, run_on_lava

needs_lava = pytest.mark.skipif(not lava_available(), reason="Lava environment .venv-lava missing (run `make lava`)")


@pytest.fixture(scope="module")
def shd_small(tmp_path_factory):
    """Few SHD samples in the real file format (the data layer's embedded generator), 40 time bins."""
    from neuromem.data import load_split, synthesize

    root = tmp_path_factory.mktemp("shd")
    synthesize(root, modalities=("shd",), shd_train_per_class=8, shd_test_per_class=2)
    train = load_split("shd", root, "train", time_bins=40, cache_dir=root / "cache")
    test = load_split("shd", root, "test", time_bins=40, cache_dir=root / "cache")
    return np.asarray(train.inputs), np.asarray(train.labels), np.asarray(test.inputs), np.asarray(test.labels), root


@pytest.fixture(scope="module")
def trained(shd_small, tmp_path_factory):
    torch.set_num_threads(1)
    train_x, train_y, test_x, test_y, _ = shd_small
    result = train_loihi_model(train_x, train_y, test_x, test_y, hidden_sizes=(32, 24), epochs=6, batch_size=16, lr=1e-2)
    path = export_lava(result.model, tmp_path_factory.mktemp("net") / "shd_loihi.h5")
    return result, path


@needs_lava
def test_trained_shd_model_is_bit_exact_on_lava(trained, shd_small):
    result, path = trained
    _, _, test_x, test_y, _ = shd_small
    assert result.model.layers[1].recurrent is not None  # >= 2 layers, one recurrent
    report = verify_on_lava(path, test_x, test_y, record_voltages=True)
    # the check cannot pass vacuously: every hidden layer spikes, the recurrent weights are in use
    assert all(count > 0 for count in report.spikes_per_layer[:-1]), report.spikes_per_layer
    assert report.mismatches_per_layer == [0, 0, 0], report.lines()
    assert report.voltages_equal and report.predictions_equal  # readout voltage at every step, too
    assert abs(report.lava_accuracy - report.torch_accuracy) <= 0.01
    assert report.torch_accuracy == pytest.approx(result.test_accuracy)
    assert report.torch_accuracy > 3 / 20  # learned something (chance is 1/20)
    assert report.resources.cores >= 3 and report.resources.energy_uj_per_inference > 0


@needs_lava
def test_lava_side_errors_are_one_line(trained, tmp_path):
    _, path = trained
    with pytest.raises(NeuromemError, match="channels"):
        run_on_lava(path, np.zeros((1, 5, 3), dtype=np.uint8))


def test_missing_lava_environment_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv(LAVA_PYTHON_ENV, str(tmp_path / "no-python"))
    with pytest.raises(NeuromemError, match=r"Lava environment missing: run `make lava`"):
        run_on_lava(tmp_path / "net.h5", np.zeros((1, 2, 3)))


def test_training_is_deterministic(shd_small):
    train_x, train_y = shd_small[0][:48], shd_small[1][:48]
    first = train_loihi_model(train_x, train_y, hidden_sizes=(8, 8), epochs=1, batch_size=16, seed=3).model
    second = train_loihi_model(train_x, train_y, hidden_sizes=(8, 8), epochs=1, batch_size=16, seed=3).model
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


@needs_lava
def test_cli_hw_verify_and_run(trained, shd_small):
    import typer
    from typer.testing import CliRunner

    from neuromem.export.cli import register

    _, path = trained
    root = shd_small[4]
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    result = runner.invoke(app, ["hw", "verify", str(path), "--data-root", str(root), "--samples", "2"])
    assert result.exit_code == 0, result.output
    assert "2 samples x 100 steps" in result.output and "spike rasters identical: yes" in result.output
    assert "Loihi 2 resources" in result.output and "uJ" in result.output
    result = runner.invoke(app, ["hw", "run", str(path), "--data-root", str(root), "--samples", "2"])
    assert result.exit_code == 0, result.output
    assert "Lava accuracy on 2 test samples" in result.output


@needs_lava
def test_groups_of_samples_in_one_lava_run_each_start_from_rest(trained, shd_small):
    """7 samples over 2 workers, 2 side by side: each worker runs its groups one after another in one Lava run
    (the neurons and synapses reset between groups, a padded copy in the last group); every sample still equals
    torch's run from rest."""
    _, path = trained
    test_x, test_y = shd_small[2][:7], shd_small[3][:7]
    report = verify_on_lava(path, test_x, test_y, record_voltages=True, workers=2, parallel=2)
    assert report.mismatches == 0 and report.voltages_equal and report.predictions_equal, report.lines()
    assert all(count > 0 for count in report.spikes_per_layer[:-1])
