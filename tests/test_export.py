"""Export to the netx HDF5 layout, reading it back, refusals, Loihi 2 resources and the CLI."""

import h5py
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from neuromem.errors import NeuromemError
from neuromem.export.cli import load_for_export, register
from neuromem.export.lava import export_lava, model_from_lava, read_lava
from neuromem.export.model import LoihiNetwork, LoihiNetworkConfig, binary_time_major, load_checkpoint, save_checkpoint
from neuromem.export.resources import MEMORY_PER_CORE_BYTES, loihi_resources


@pytest.fixture()
def model():
    torch.manual_seed(4)
    net = LoihiNetwork(LoihiNetworkConfig(30, (12, 10), (False, True), 3, hidden={"vth": 1024}))
    with torch.no_grad():
        for layer in net.layers:
            layer.synapse.weight.mul_(3)
    return net


def test_h5_has_the_netx_layout(model, tmp_path):
    path = export_lava(model, tmp_path / "net.h5")
    with h5py.File(path, "r") as f:
        layers = f["layer"]
        assert sorted(layers.keys()) == ["0", "1", "2", "3"]
        assert layers["0"]["type"][0] == b"input" and list(layers["0"]["shape"][()]) == [30]
        hidden = layers["2"]
        assert hidden["type"][0] == b"dense" and list(hidden["shape"][()]) == [10]
        assert hidden["weight"].shape == (10, 12) and hidden["recurrentWeight"].shape == (10, 10)
        neuron = hidden["neuron"]
        assert neuron["type"][0] == b"CUBA"
        p = model.hidden[1].neuron
        assert neuron["iDecay"][()] == p.du + 1 and neuron["vDecay"][()] == p.dv and neuron["vThMant"][()] == p.vth
        weight = hidden["weight"][()]
        assert weight.dtype.kind == "i" and weight.min() >= -256 and weight.max() <= 254 and np.all(weight % 2 == 0)
        assert "recurrentWeight" not in layers["1"]


def test_h5_round_trip_rebuilds_the_same_model(model, tmp_path):
    path = export_lava(model, tmp_path / "net.h5")
    rebuilt = model_from_lava(path)
    x = binary_time_major((np.random.default_rng(0).random((5, 25, 30)) < 0.3).astype(np.uint8))
    with torch.no_grad():
        spikes_a, volts_a = model.run(x)
        spikes_b, volts_b = rebuilt.run(x)
    assert spikes_a[0].sum() > 0 and spikes_a[1].sum() > 0
    assert all(torch.equal(a, b) for a, b in zip(spikes_a, spikes_b)) and torch.equal(volts_a, volts_b)
    reloaded = load_checkpoint(save_checkpoint(rebuilt, tmp_path / "rebuilt.pt"))
    assert [l.neuron for l in reloaded.layers] == [l.neuron for l in model.layers]
    with torch.no_grad():
        assert torch.equal(reloaded.run(x)[1], volts_a)


def test_truncated_and_corrupt_h5(model, tmp_path):
    good = export_lava(model, tmp_path / "good.h5")
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    for path in (truncated, corrupt):
        with pytest.raises(NeuromemError, match="truncated or corrupt|damaged"):
            read_lava(path)
    with pytest.raises(NeuromemError, match="does not exist"):
        read_lava(tmp_path / "missing.h5")


def test_h5_from_another_tool_names_the_unsupported_layer(tmp_path):
    path = tmp_path / "pool.h5"
    with h5py.File(path, "w") as f:  # what lava-dl's slayer writes for a pooling block
        f.create_dataset("layer/0/type", (1,), "S10", [b"input"])
        f.create_dataset("layer/0/shape", data=np.array([34, 34, 2]))
        f.create_dataset("layer/1/type", (1,), "S10", [b"pool"])
    with pytest.raises(NeuromemError, match="layer 1 is 'pool'.*'input', 'conv' and 'dense'"):
        read_lava(path)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("weights", data=np.ones(3))
    with pytest.raises(NeuromemError, match="no 'layer' group"):
        read_lava(other)


def test_cells_with_unexportable_memory_are_refused(tmp_path):
    cell = tmp_path / "run" / "cells" / "shd-hopfield-s0-abc" / "model.pt"
    cell.parent.mkdir(parents=True)
    torch.save({"config": {"modality": "shd", "memory": "hopfield", "neuron": "lif"}, "state_dict": {}}, cell)
    import neuromem.memory.hopfield  # noqa: F401  (registers the module)

    with pytest.raises(NeuromemError, match=r"memory module 'hopfield' cannot run on Loihi: softmax.*hopfield-spiking"):
        load_for_export(tmp_path / "run")


def test_resources_and_energy_follow_the_counts():
    shapes = [(4, 3, False), (3, 2, True)]
    inputs = np.zeros((2, 5, 4), dtype=np.uint8)
    inputs[:, 0, :2] = 1  # 2 input spikes per sample
    hidden = np.zeros((2, 5, 3), dtype=np.uint8)
    hidden[:, 1, 0] = 1  # 1 spike per sample
    out = np.zeros((2, 5, 2), dtype=np.uint8)
    out[0, 2, :] = 1  # 2 spikes in sample 0, none in sample 1 -> 1 per sample
    r = loihi_resources(shapes, inputs, [hidden, out])
    assert r.neurons == 5 and r.synapses == 12 + 6 + 4 and r.cores == 2
    # synaptic ops: 2 inputs x 3 + 1 hidden x 2 + 1 recurrent x 2
    assert r.synaptic_ops_per_inference == pytest.approx(10)
    expected_pj = 10 * 23.6 + (25 - 2) * 52.0 + 2 * 81.0 + 2 * 1.7
    assert r.energy_uj_per_inference == pytest.approx(expected_pj * 1e-6)
    assert "Loihi 2" in r.sources["per-core limits"] and "Davies" in r.sources["synaptic ops"]
    big = loihi_resources([(MEMORY_PER_CORE_BYTES, 2, False)], np.zeros((1, 1, MEMORY_PER_CORE_BYTES)), [np.zeros((1, 1, 2))])
    assert big.cores == 2  # 2 x 192 KiB of 8-bit weights need two cores


def test_cli_exports_checkpoint_to_lava_and_nir(model, tmp_path):
    checkpoint = save_checkpoint(model, tmp_path / "model.pt")
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(checkpoint), "--to", "lava", "--out", str(tmp_path / "net.h5")])
    assert result.exit_code == 0, result.output
    assert "30 -> 12 -> 10r -> 3" in result.output
    assert "Loihi 2: 25 neurons, 610 synapses, 3 cores" in result.output  # 30*12 + 12*10 + 10*10 + 10*3
    assert read_lava(tmp_path / "net.h5")[0] == 30
    result = runner.invoke(app, ["export", str(checkpoint), "--to", "nir", "--out", str(tmp_path / "net.nir")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "net.nir").stat().st_size > 0
    result = runner.invoke(app, ["export", str(checkpoint), "--to", "onnx", "--out", str(tmp_path / "x")])
    assert isinstance(result.exception, NeuromemError) and "valid: lava, nir" in str(result.exception)


@pytest.mark.parametrize("memory,reason", [("hgrn", "multiplicative gates"), ("cmhan", "energy descent"),
                                           ("ttt", "test time"), ("scl", "float rates")])
def test_export_refusals_give_the_modules_reason_and_a_flag_ablate_accepts(tmp_path, memory, reason):
    from neuromem.cli import app
    from neuromem.models.frontends import NEURON_LAYERS

    cell = tmp_path / "run" / "cells" / f"shd-{memory}-loihi-s0-abc" / "model.pt"
    cell.parent.mkdir(parents=True)
    torch.save({"config": {"modality": "shd", "memory": memory, "neuron": "loihi"}, "state_dict": {}}, cell)
    with pytest.raises(NeuromemError, match=f"'{memory}' cannot run on Loihi: .*{reason}.*hopfield-spiking, scl-spiking"):
        load_for_export(cell.parent)
    lif = tmp_path / "lif.pt"
    torch.save({"config": {"modality": "shd", "memory": "hopfield-spiking", "neuron": "lif"}, "state_dict": {}}, lif)
    with pytest.raises(NeuromemError, match=r"neuromem ablate --neuron loihi --memory hopfield-spiking") as refused:
        load_for_export(lif)
    assert "hw train" not in str(refused.value) and "loihi" in NEURON_LAYERS


def test_a_new_export_target_is_one_file_and_one_registration_line(model, tmp_path, monkeypatch):
    import sys

    from neuromem.export import targets

    # the file: a writer of the chain's integer weights
    (tmp_path / "npz_target.py").write_text(
        "import numpy as np\n\n"
        "def write(model, path):\n"
        "    weights = {f'layer{i}': l.synapse.integer_weight().detach().numpy() for i, l in enumerate(model.layers)}\n"
        "    with open(path, 'wb') as handle:\n"
        "        np.savez(handle, **weights)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(targets, "_TARGETS", dict(targets._TARGETS))
    # the registration line
    targets.register_export_target(targets.ExportTarget("npz", ".npz", "integer weights", "npz_target:write"))
    checkpoint = save_checkpoint(model, tmp_path / "model.pt")
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["export", str(checkpoint), "--to", "npz", "--out", str(tmp_path / "w.npz")])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "30 -> 12 -> 10r -> 3" in result.output
    with np.load(tmp_path / "w.npz") as stored:
        assert np.array_equal(stored["layer0"], model.layers[0].synapse.integer_weight().detach().numpy())
    result = CliRunner().invoke(app, ["export", str(checkpoint), "--to", "npz", "--out", str(tmp_path / "x.npz"),
                                      "--compare", "3"])
    assert isinstance(result.exception, NeuromemError) and "targets with one: nir" in str(result.exception)
    with pytest.raises(ValueError, match="registered twice"):
        targets.register_export_target(targets.ExportTarget("npz", ".npz", "again", "npz_target:write"))
    sys.modules.pop("npz_target", None)


def test_netx_reader_imports_nothing_but_numpy_and_h5py():
    """The Lava backend (Python 3.10, no torch) reads network files with the exporter's own reader."""
    import subprocess
    import sys

    code = ("import sys; import neuromem.export.netx; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'scipy', 'typer', 'numba', 'sklearn'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_registering_a_loihi_memory_without_chip_layers_is_refused():
    from neuromem.memory.base import MemoryModule, register_memory

    class NoChain(MemoryModule):
        spiking = True

    with pytest.raises(ValueError, match="defines chip_layers"):
        register_memory("no-chain-test", "a spiking module without its chain", loihi_exportable=True)(NoChain)
