"""Modern Hopfield retrieval: stored patterns are fixed points, noisy cues converge."""

import pytest
import torch

from neuromem.memory import build_memory
from neuromem.memory.functional.hopfield import hopfield_energy, hopfield_retrieve


def _patterns(num=16, dim=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.sign(torch.randn(num, dim, generator=generator))  # well separated +-1 patterns


def test_stored_pattern_is_a_fixed_point():
    patterns = _patterns()
    retrieved, attention = hopfield_retrieve(patterns, patterns, beta=1.0)
    torch.testing.assert_close(retrieved, patterns, atol=1e-4, rtol=0)
    assert torch.all(attention.argmax(-1) == torch.arange(len(patterns)))


def test_noisy_cue_converges_to_its_pattern():
    patterns = _patterns()
    generator = torch.Generator().manual_seed(1)
    flips = torch.rand(patterns.shape, generator=generator) < 0.2  # 20% of the bits flipped
    cues = torch.where(flips, -patterns, patterns)
    one_step, _ = hopfield_retrieve(cues, patterns, beta=1.0)
    retrieved, _ = hopfield_retrieve(cues, patterns, beta=1.0, steps=3)
    assert (cues != patterns).any()
    assert torch.all((one_step @ patterns.t()).argmax(-1) == torch.arange(len(patterns)))
    torch.testing.assert_close(retrieved, patterns, atol=1e-3, rtol=0)


def test_update_does_not_increase_energy():
    patterns = torch.randn(8, 32) / 32**0.5
    state = torch.randn(5, 32)
    energies = [hopfield_energy(state, patterns, 2.0)]
    for _ in range(4):
        state, _ = hopfield_retrieve(state, patterns, beta=2.0)
        energies.append(hopfield_energy(state, patterns, 2.0))
    for before, after in zip(energies, energies[1:]):
        assert torch.all(after <= before + 1e-5)


def test_module_shapes_and_shared_memory_across_modalities():
    torch.manual_seed(0)
    memory = build_memory("hopfield", {"shd": 32, "nmnist": 48}, dim=16, num_patterns=8)
    output = memory({"shd": torch.rand(10, 4, 32), "nmnist": torch.rand(7, 4, 48)})
    assert output.representations["shd"].shape == (4, 16)
    assert output.representations["nmnist"].shape == (4, 16)
    assert output.extras["attention"]["shd"].shape == (4, 8)
    alone = memory({"shd": torch.rand(10, 3, 32)})
    assert set(alone.representations) == {"shd"}


def test_module_reads_time_windows():
    torch.manual_seed(0)
    memory = build_memory("hopfield", {"shd": 8}, dim=16, num_patterns=8, time_bins=2)
    early = torch.zeros(10, 1, 8)
    early[:5] = 1.0
    late = early.flip(0)  # the same whole-sample rate, in the other half of the sample
    assert not torch.allclose(memory({"shd": early}).representations["shd"], memory({"shd": late}).representations["shd"])
    one_bin = build_memory("hopfield", {"shd": 8}, dim=16, num_patterns=8, time_bins=1)
    torch.testing.assert_close(one_bin({"shd": early}).representations["shd"], one_bin({"shd": late}).representations["shd"])
    with pytest.raises(ValueError, match="time_bins"):
        build_memory("hopfield", {"shd": 8}, time_bins=0)
