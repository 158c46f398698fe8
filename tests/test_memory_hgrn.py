import pytest
import torch
from torch import nn

from neuromem.memory import build_memory
from neuromem.memory.functional.hgrn import (
    MIN_FORGET,
    forget_gate,
    gated_scan,
    gated_scan_loop,
    layer_lower_bounds,
)

from conftest import toy_problem_accuracy, toy_spikes


@pytest.mark.parametrize("steps", [1, 7, 8, 29])
def test_chunked_scan_matches_loop_values_and_gradients(steps):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(steps, 3, 5, generator=g, requires_grad=True)
    drive = torch.randn(steps, 3, 5, generator=g, requires_grad=True)
    initial = torch.randn(3, 5, generator=g)
    forget = forget_gate(3 * logits, torch.full((5,), 0.0))
    fast = gated_scan(forget, drive, initial)
    slow = gated_scan_loop(forget, drive, initial)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    weights = torch.randn(steps, 3, 5, generator=g)
    grads_fast = torch.autograd.grad((fast * weights).sum(), (logits, drive), retain_graph=True)
    grads_slow = torch.autograd.grad((slow * weights).sum(), (logits, drive))
    for a, b in zip(grads_fast, grads_slow):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_scan_survives_gates_at_the_clamp():
    # the smallest allowed forget gate for a whole sequence must not overflow
    forget = torch.full((64, 2, 3), MIN_FORGET)
    drive = torch.randn(64, 2, 3, generator=torch.Generator().manual_seed(1))
    out = gated_scan(forget, drive)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, gated_scan_loop(forget, drive), rtol=1e-4, atol=1e-5)


def test_lower_bounds_rise_with_depth_and_gate_respects_them():
    logits = torch.randn(4, 6, generator=torch.Generator().manual_seed(2))
    bounds = layer_lower_bounds(logits)
    assert torch.all(bounds[0] == 0)
    assert torch.all(bounds[1:] > bounds[:-1])
    assert torch.all(bounds < 1)
    gates = forget_gate(torch.full((6,), -50.0), bounds[2])
    torch.testing.assert_close(gates, bounds[2].clamp(min=MIN_FORGET))


def test_module_bounds_rise_with_depth_after_training_steps():
    torch.manual_seed(0)
    memory = build_memory("hgrn", {"shd": 24}, dim=16, layers=3)
    spikes, labels = toy_spikes(torch.Generator().manual_seed(0))
    readout = nn.Linear(memory.output_size, 4)
    opt = torch.optim.Adam([*memory.parameters(), *readout.parameters()], lr=0.05)
    for _ in range(5):
        loss = nn.functional.cross_entropy(readout(memory({"shd": spikes}).representations["shd"]), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    means = memory({"shd": spikes}).extras["lower_bounds"]
    assert means.shape == (3,) and torch.all(means[1:] > means[:-1])


def test_module_chunked_and_loop_scan_agree():
    torch.manual_seed(0)
    fast = build_memory("hgrn", {"nmnist": 24}, dim=16, scan="chunked")
    slow = build_memory("hgrn", {"nmnist": 24}, dim=16, scan="loop")
    slow.load_state_dict(fast.state_dict())
    spikes, _ = toy_spikes(torch.Generator().manual_seed(3))
    torch.testing.assert_close(
        fast({"nmnist": spikes}).representations["nmnist"], slow({"nmnist": spikes}).representations["nmnist"],
        rtol=1e-4, atol=1e-5,
    )


def test_last_pooling_reads_the_final_step_only():
    torch.manual_seed(0)
    memory = build_memory("hgrn", {"shd": 24}, dim=16, pooling="last")
    spikes, _ = toy_spikes(torch.Generator().manual_seed(4))
    full = memory({"shd": spikes}).representations["shd"]
    changed = spikes.clone()
    changed[-1] = 1.0 - changed[-1]
    assert not torch.allclose(full, memory({"shd": changed}).representations["shd"])


@pytest.mark.parametrize(
    "options", [{"layers": 0}, {"dim": 0}, {"pooling": "max"}, {"scan": "fft"}, {"expand": -1}]
)
def test_invalid_options_name_the_option(options):
    with pytest.raises(ValueError, match=next(iter(options))):
        build_memory("hgrn", {"shd": 8}, **options)


def test_learns_a_toy_spike_problem():
    torch.manual_seed(0)
    assert toy_problem_accuracy(build_memory("hgrn", {"shd": 24}, dim=32), steps=40) > 0.8  # chance is 0.25

def test_time_bins_run_the_recurrence_over_window_rates():
    from neuromem.memory.functional.pooling import binned_rates, windowed_rates

    spikes, _ = toy_spikes(torch.Generator().manual_seed(5))
    windows = windowed_rates(spikes, 4)
    assert windows.shape == (4, spikes.shape[1], spikes.shape[2])
    torch.testing.assert_close(windows.transpose(0, 1).flatten(1), binned_rates(spikes, 4))
    torch.manual_seed(0)
    memory = build_memory("hgrn", {"shd": 24}, dim=16, time_bins=4)
    out = memory({"shd": spikes}).representations["shd"]
    # the same rates in each window, spikes moved inside it: the same representation
    moved = spikes.clone()
    window = spikes.shape[0] // 4
    moved[:window] = spikes[:window].flip(0)
    torch.testing.assert_close(memory({"shd": moved}).representations["shd"], out)
    with pytest.raises(ValueError, match="time_bins"):
        build_memory("hgrn", {"shd": 8}, time_bins=0)


def test_windows_pooling_reads_outputs_in_time_windows_normalized_after_pooling():
    torch.manual_seed(0)
    memory = build_memory("hgrn", {"shd": 24}, dim=16, readout_windows=5)
    assert memory.pooling == "windows" and memory.output_size == 80
    spikes, _ = toy_spikes(torch.Generator().manual_seed(6))
    out = memory({"shd": spikes}).representations["shd"]
    assert out.shape == (spikes.shape[1], 80)
    windows = out.reshape(spikes.shape[1], 5, 16)  # window-major, each window layer-normalized
    torch.testing.assert_close(windows.mean(-1), torch.zeros(spikes.shape[1], 5), atol=1e-5, rtol=0)
    # the same events in reversed order: a window-reading representation tells them apart
    assert not torch.allclose(memory({"shd": spikes.flip(0)}).representations["shd"], out, atol=1e-3)
    mean = build_memory("hgrn", {"shd": 24}, dim=16, pooling="mean")
    assert mean.output_size == 16 and mean({"shd": spikes}).representations["shd"].shape == (spikes.shape[1], 16)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="readout_windows"):
            build_memory("hgrn", {"shd": 8}, readout_windows=bad)
