"""--device on evaluate, engram, export and hw verify, and --precision on ablate (issue 29), without a GPU.

- `--device cuda` where torch sees no CUDA device is one line and exit 2, for every command that takes it.
- The device reaches the torch work: the evaluated cells' networks, the NIR --compare's cell and imported graph, hw
  verify's quantized model are moved to it (spied on here with the CPU, the one device this machine has); their
  results come back on the CPU equal to the default's. engram's permutation nulls, batched on the device, equal
  the one-permutation-at-a-time numpy loops they replaced (same draws, same p-values).
- --precision: fp16 on a CPU is one line (it needs CUDA); bf16 trains under CPU autocast (the synaptic products in
  bf16, the neurons' currents back in float32) and is part of the cell's identity; fp32 cells keep their ids.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import run_cli

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: --device cuda is valid here")


def _invoke(*args: str):
    """The CLI in this process (a monkeypatch reaches it): (exit code, output on one line)."""
    from typer.testing import CliRunner

    from neuromem.cli import _register_commands, app

    _register_commands()
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


@no_cuda
@pytest.mark.parametrize("command", [
    ["evaluate", "RUN", "--robustness", "noise"],
    ["engram", "RUN"],
    ["export", "RUN", "--to", "nir", "--out", "x.nir", "--compare", "4"],
    ["hw", "verify", "net.h5"],
], ids=["evaluate", "engram", "export", "hw-verify"])
def test_cuda_where_there_is_none_is_one_line(tmp_path, command):
    result = run_cli(*[str(tmp_path / a) if a in ("RUN", "net.h5", "x.nir") else a for a in command],
                     "--device", "cuda", timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "--device cuda: CUDA is not available on this machine; valid: auto, cpu" in lines[0]


def test_fp16_on_a_cpu_is_one_line_and_bad_precisions_are_named(tmp_path):
    result = run_cli("ablate", "--modality", "shd", "--memory", "hopfield", "--dry-run", "--device", "cpu",
                     "--precision", "fp16", timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--precision fp16 needs CUDA" in result.stderr and "valid on the CPU: fp32, bf16" in result.stderr
    from neuromem.precision import PrecisionError, check_precision

    with pytest.raises(PrecisionError, match=r"--precision 'fp8' is not known; valid: fp32, bf16, fp16"):
        check_precision("fp8", "cpu")
    assert check_precision("fp16", "cuda") == "fp16"  # checked by name: no device needed to say it is valid there


def test_precision_is_part_of_the_identity_only_when_not_fp32():
    from neuromem.train.config import CellConfig, stored_digest

    old = CellConfig("shd", "hopfield", seed=2)
    assert "precision" not in old.to_dict() and stored_digest(old.to_dict()) == old.digest()
    bf16 = CellConfig("shd", "hopfield", seed=2, precision="bf16")
    assert bf16.cell_id != old.cell_id and bf16.variant_digest() != old.variant_digest()
    assert bf16.variant == "precision=bf16" and CellConfig.from_dict(bf16.to_dict()) == bf16


def test_bf16_autocast_runs_the_products_in_bf16_and_the_neurons_in_float32():
    from neuromem.models import build_network
    from neuromem.neurons.functional import neuron as neuron_module

    torch.manual_seed(0)
    network = build_network({"shd": (30,)}, {"shd": 4}, "hopfield", hidden=16, neuron="lif")
    x = (torch.rand(12, 5, 30) < 0.3).float()
    seen = []
    original = neuron_module.template_sequence

    def spy(function, model, inputs, *rest):
        seen.append(inputs.dtype)
        return original(function, model, inputs, *rest)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(neuron_module, "template_sequence", spy)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = network({"shd": x})
        output.logits["shd"].float().sum().backward()
    assert seen and set(seen) == {torch.float32}  # currents back in float32 before the neurons (numba kernels run)
    assert output.logits["shd"].dtype == torch.bfloat16  # the readout product ran in bf16
    assert all(p.dtype == torch.float32 for p in network.parameters())
    assert network.front_ends["shd"] is not None and any(p.grad is not None for p in network.parameters())


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory):
    """One shd hopfield cell in fp32 and one in bf16 (CPU autocast), a few steps each."""
    out = tmp_path_factory.mktemp("device-commands") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEUROMEM_HOME", str(tmp_path_factory.getbasetemp() / "neuromem-home"))
        code, output = _invoke("ablate", "--modality", "shd", "--memory", "hopfield", "--precision", "fp32,bf16",
                               "--epochs", "1", "--hidden", "16", "--batch-size", "16", "--max-train-samples", "24",
                               "--threads", "1", "--device", "cpu", "--data-root", str(tiny_data), "--out", str(out))
    assert code == 0, output
    return out


def test_bf16_cells_train_and_evaluate_on_the_device_they_are_given(run, tiny_data, monkeypatch):
    cells = json.loads((run / "results.json").read_text())["cells"]
    assert sorted(c["variant"] for c in cells) == ["hidden=16", "hidden=16 precision=bf16"]
    assert all(c["status"] == "ok" and c["device"] == "cpu" for c in cells)
    moved = []
    original = torch.nn.Module.to

    def to(module, *args, **kwargs):
        moved.append(args[0] if args else kwargs.get("device"))
        return original(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", to)
    code, output = _invoke("evaluate", str(run), "--robustness", "noise", "--device", "cpu", "--data-root", str(tiny_data))
    assert code == 0 and "evaluated 2 cells" in output, output
    assert sum(1 for m in moved if isinstance(m, torch.device) and m.type == "cpu") >= 2  # each cell's network
    rows = json.loads((run / "results.json").read_text())["study"]["evaluations"]
    accuracy = {c["cell_id"]: c["test_accuracy"] for c in cells}
    for row in rows:  # level 0 is the stored test accuracy: same weights, same precision, results on the CPU
        if row["level"] == 0:
            assert row["accuracy"] == pytest.approx(accuracy[row["cell_id"]])


def _chain():
    from neuromem.export.nir.export import SpikingChain
    from neuromem.neurons.layers import SpikingLinear

    torch.manual_seed(1)
    layers = [SpikingLinear(20, 12, neuron="lif", reset="zero", beta=0.8),
              SpikingLinear(12, 10, neuron="cuba", reset="zero", alpha=0.5, recurrent=True)]
    with torch.no_grad():
        for layer in layers:
            layer.synapse.weight.mul_(4)
    return SpikingChain(layers, torch.nn.Linear(10, 3), (20,))


def test_nir_compare_runs_the_cell_and_its_graph_on_the_device(monkeypatch):
    from neuromem.export.nir import nir_agreement

    rng = np.random.default_rng(0)
    inputs = rng.integers(0, 3, (6, 25, 20)) * (rng.random((6, 25, 20)) < 0.3)
    default = nir_agreement(_chain(), inputs, simulators=())
    moved = []
    original = torch.nn.Module.to
    monkeypatch.setattr(torch.nn.Module, "to",
                        lambda module, *a, **k: moved.append((type(module).__name__, str(a[0] if a else k.get("device"))))
                        or original(module, *a, **k))
    on_device = nir_agreement(_chain(), inputs, simulators=(), device=torch.device("cpu"))
    assert ("NIRNetwork", "cpu") in moved and ("SpikingLinear", "cpu") in moved
    assert on_device.lines() == default.lines() and sum(on_device.spikes) > 0


def test_hw_verify_s_torch_model_runs_on_the_device(monkeypatch):
    from neuromem.export.hardware import torch_rasters
    from neuromem.export.model import build_loihi_shd_model

    torch.manual_seed(0)
    model = build_loihi_shd_model((12, 8), input_size=20, num_classes=3)
    rng = np.random.default_rng(1)
    inputs = rng.integers(0, 2, (5, 15, 20))
    default = torch_rasters(model, inputs)
    moved = []
    original = torch.nn.Module.to
    monkeypatch.setattr(torch.nn.Module, "to",
                        lambda module, *a, **k: moved.append(a[0] if a else k.get("device")) or original(module, *a, **k))
    spikes, trace, final = torch_rasters(model, inputs, device=torch.device("cpu"))
    assert moved == [torch.device("cpu")]
    assert all(np.array_equal(a, b) for a, b in zip(spikes, default[0]))
    assert np.array_equal(trace, default[1]) and np.array_equal(final, default[2])


def _loop_nulls(x, y, classes, permutations, seed, components):
    """The CKA and CCA nulls as they were computed before: one permutation at a time, numpy (the oracle)."""
    from neuromem.engram import alignment as a

    rng = np.random.default_rng(seed)
    for _ in range(2 * permutations):  # the cosine and RSA nulls draw first
        rng.permutation(len(classes))
    gram_x, gram_y = a._centred_gram(x), a._centred_gram(y)
    norm = np.linalg.norm(gram_x) * np.linalg.norm(gram_y)
    block = len(x) // len(classes)
    cka = []
    for _ in range(permutations):
        order = a._block_permutation(rng.permutation(len(classes)), block)
        cka.append((gram_x * gram_y[np.ix_(order, order)]).sum() / norm)
    qx, qy = a._orthonormal_basis(a._pca(x, components)), a._orthonormal_basis(a._pca(y, components))
    cca = [float(np.clip(np.linalg.svd(qx.T @ qy[a._block_permutation(rng.permutation(len(classes)), block)],
                                      compute_uv=False), 0, 1).mean()) for _ in range(permutations)]
    return np.array(cka), np.array(cca)


def test_engram_nulls_batched_on_the_device_equal_the_loops(monkeypatch):
    from neuromem.engram import alignment

    rng = np.random.default_rng(3)
    digits = np.repeat(np.arange(6), 9)
    centres = rng.normal(size=(6, 12))
    x = centres[digits] + 0.8 * rng.normal(size=(54, 12))
    y = centres[digits] @ rng.normal(size=(12, 12)) + 0.8 * rng.normal(size=(54, 12))
    captured = {}
    for name in ("block_cka_null", "block_cca_null"):
        original = getattr(alignment, name)
        monkeypatch.setattr(alignment, name, lambda *a, _f=original, _n=name, **k: captured.setdefault(_n, _f(*a, **k)))
    result = alignment.align("a", x, digits, "b", y, digits, permutations=200, seed=5, device=torch.device("cpu"))
    cka, cca = _loop_nulls(x, y, np.arange(6), 200, 5, result.cca["components"])
    norm = np.linalg.norm(alignment._centred_gram(x)) * np.linalg.norm(alignment._centred_gram(y))
    np.testing.assert_allclose(captured["block_cka_null"] / norm, cka, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(captured["block_cca_null"], cca, rtol=1e-12, atol=1e-12)
    assert result.cka["p_value"] == alignment._p_value(result.cka["linear_cka"], cka)
    assert result.cca["p_value"] == alignment._p_value(result.cca["mean_canonical_correlation"], cca)
    assert 0 < result.cka["null_mean"] < result.cka["linear_cka"]
