import math

import pytest
import torch
from torch.nn import functional as F

from neuromem.memory import build_memory
from neuromem.memory.functional.pooling import binned_rates
from neuromem.memory.functional.scl import supcon_loss

from conftest import toy_problem_accuracy, toy_spikes


def reference_supcon(z, labels, tau):
    """Khosla et al. eq. 2, written out term by term."""
    total, anchors = 0.0, 0
    for i in range(len(z)):
        positives = [p for p in range(len(z)) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(math.exp(float(z[i] @ z[a]) / tau) for a in range(len(z)) if a != i)
        total += -sum(math.log(math.exp(float(z[i] @ z[p]) / tau) / denominator) for p in positives) / len(positives)
        anchors += 1
    return total / anchors


def test_supcon_matches_direct_computation():
    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(7, 5, generator=g), dim=-1)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3])  # label 2 and 3 have no positive: excluded anchors
    got = supcon_loss(z, labels, 0.5)
    assert got.item() == pytest.approx(reference_supcon(z, labels, 0.5), rel=1e-5)


def test_supcon_is_lower_for_clustered_embeddings():
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(4).repeat(4)
    centers = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    clustered = F.normalize(centers[labels] + 0.05 * torch.randn(16, 8, generator=g), dim=-1)
    scattered = F.normalize(torch.randn(16, 8, generator=g), dim=-1)
    assert supcon_loss(clustered, labels, 0.1) < supcon_loss(scattered, labels, 0.1) - 1.0


def test_supcon_without_positives_is_zero_with_graph():
    z = F.normalize(torch.randn(3, 4), dim=-1).requires_grad_()
    loss = supcon_loss(z, torch.tensor([0, 1, 2]), 0.1)
    assert loss.item() == 0.0
    loss.backward()


def test_binned_rates_keep_timing():
    spikes = torch.zeros(6, 1, 2)
    spikes[:3, 0, 0] = 1.0  # channel 0 fires early, channel 1 late
    spikes[3:, 0, 1] = 1.0
    torch.testing.assert_close(binned_rates(spikes, 1), torch.tensor([[0.5, 0.5]]))
    torch.testing.assert_close(binned_rates(spikes, 2), torch.tensor([[1.0, 0.0, 0.0, 1.0]]))
    assert binned_rates(spikes, 9).shape == (1, 18)  # more bins than steps still works
    with pytest.raises(ValueError, match="time_bins"):
        binned_rates(spikes, 0)


def test_supcon_mode_detaches_the_readout_path():
    torch.manual_seed(0)
    memory = build_memory("scl", {"shd": 24}, dim=16, hidden=16, loss="supcon")
    spikes, labels = toy_spikes(torch.Generator().manual_seed(0))
    out = memory({"shd": spikes})
    assert not out.representations["shd"].requires_grad
    memory.auxiliary_loss(out, labels).backward()
    assert memory.encoders["shd"][0].weight.grad.abs().sum() > 0


def test_ce_mode_has_no_auxiliary_loss_and_keeps_the_readout_path():
    memory = build_memory("scl", {"shd": 24}, dim=16, hidden=16, loss="ce")
    spikes, labels = toy_spikes(torch.Generator().manual_seed(0))
    out = memory({"shd": spikes})
    assert out.representations["shd"].requires_grad
    assert memory.auxiliary_loss(out, labels).item() == 0.0


def test_joint_batch_uses_cross_modal_positives():
    torch.manual_seed(0)
    memory = build_memory("scl", {"shd": 24, "nmnist": 24}, dim=16, hidden=16)
    audio, labels = toy_spikes(torch.Generator().manual_seed(0), per_class=2)
    visual, _ = toy_spikes(torch.Generator().manual_seed(1), per_class=2)
    out = memory({"shd": audio, "nmnist": visual})
    p = out.extras["projections"]
    expected = supcon_loss(torch.cat([p["shd"], p["nmnist"]]), torch.cat([labels, labels]), memory.temperature)
    torch.testing.assert_close(memory.auxiliary_loss(out, labels), expected)
    # with one sample per class, the only positives are the other modality's paired samples
    single = labels[::2]
    out = memory({"shd": audio[:, ::2], "nmnist": visual[:, ::2]})
    assert memory.auxiliary_loss(out, single).item() > 0
    assert memory.auxiliary_loss(memory({"shd": audio[:, ::2]}), single).item() == 0.0


@pytest.mark.parametrize(
    "options",
    [{"loss": "mse"}, {"temperature": 0}, {"dim": 0}, {"projection_dim": 0}, {"supcon_weight": -1}, {"time_bins": 0}],
)
def test_invalid_options_name_the_option(options):
    with pytest.raises(ValueError, match=next(iter(options))):
        build_memory("scl", {"shd": 8}, **options)


@pytest.mark.parametrize("loss", ["both", "supcon", "ce"])
def test_learns_a_toy_spike_problem(loss):
    torch.manual_seed(0)
    memory = build_memory("scl", {"shd": 24}, dim=32, hidden=32, loss=loss)
    assert toy_problem_accuracy(memory, steps=60) > 0.8  # chance is 0.25