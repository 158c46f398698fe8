"""hopfield-spiking's associative recall (what the capacity suite's stored-pattern curve loads): arbitrary patterns
written as a pattern layer's synapses, the cue presented as spikes, the winner-take-all's winner read out
through the transpose; the trained neurons and inhibition; retrieval at low load, failure far beyond it."""

from __future__ import annotations

import math

import pytest
import torch

from neuromem.memory import build_memory
from neuromem.memory.hopfield_spiking import CUE_STEPS, cue_spikes
from neuromem.study.suites import capacity

DIM = 16


def _memory(neuron: str):
    torch.manual_seed(0)
    return build_memory("hopfield-spiking", {"a": 8}, neuron=neuron, dim=DIM, num_patterns=4, inhibition=0.3).eval()


def test_cue_spikes_are_the_cues_positive_part_at_the_layers_rate():
    cues = torch.tensor([[1.0, 2.0, -1.0, 0.0], [0.5, 0.5, 0.5, 0.5]])
    spikes = cue_spikes(cues, 300)
    assert spikes.shape == (300, 2, 4) and set(spikes.unique().tolist()) <= {0.0, 1.0}
    rates = spikes.mean(0)
    assert rates[0, 2] == 0 and rates[0, 3] == 0  # negative and zero components: silent
    assert rates[0, 1].item() == pytest.approx(2 * rates[0, 0].item(), abs=0.01)
    assert rates[0, :2].mean().item() == pytest.approx(0.1, abs=0.01) and rates[1].mean().item() == pytest.approx(0.1, abs=0.01)
    assert torch.equal(spikes, cue_spikes(cues, 300))  # no random draw


@pytest.mark.parametrize("neuron", ["lif", "loihi"])
def test_recall_writes_the_patterns_with_the_trained_neurons_and_retrieves_the_winner(neuron):
    memory = _memory(neuron)
    recall = memory.associative_recall()
    assert recall.dim == DIM and math.isinf(recall.beta) and "winner-take-all" in recall.rule
    assert recall.pattern_norm == pytest.approx(float(memory.patterns.synapse.weight.detach()[:4].norm(dim=-1).mean()))
    generator = torch.Generator().manual_seed(3)
    patterns = torch.nn.functional.normalize(torch.randn(5, DIM, generator=generator), dim=-1) * recall.pattern_norm

    layer = memory.pattern_layer(patterns)
    assert layer.parameters_ == memory.patterns.parameters_ and torch.equal(layer.synapse.weight, patterns)
    expected_inhibition = -0.3 * (1 - torch.eye(5))
    assert torch.equal(layer.recurrent, expected_inhibition)
    assert memory.patterns.synapse.weight.shape[0] == 4 + DIM  # the trained layer is left as it was

    noise = 0.1 * recall.pattern_norm * torch.nn.functional.normalize(torch.randn(5, DIM, generator=generator), dim=-1)
    retrieved = recall.recall(patterns + noise, patterns)
    assert torch.equal(retrieved, patterns)  # each cue near pattern k: the winner is pattern k, its stored pattern
    counts = layer(cue_spikes(patterns + noise, CUE_STEPS)).sum(0)
    assert torch.equal(counts.argmax(-1), torch.arange(5))  # the pattern neurons' own spikes chose it
    assert torch.equal(recall.recall(torch.zeros(2, DIM), patterns), torch.zeros(2, DIM))  # no spikes: no winner


@pytest.mark.parametrize("neuron", ["lif", "loihi"])
def test_capacity_rows_retrieve_at_low_load_and_fail_far_beyond(neuron):
    recall = _memory(neuron).associative_recall()

    def rows(load: float) -> dict:
        return capacity.stored_pattern_rows(recall, max(2, round(load * DIM)), recall.pattern_norm, 0.1, seed=1)

    low, high = rows(0.25), rows(64.0)
    assert low["retrieval"] == 1.0 and low["relative_error"] == 0.0
    assert high["patterns"] == 64 * DIM and high["retrieval"] < 0.5
    assert rows(64.0) == high  # same seed, same numbers
    assert capacity.theory_patterns(DIM, recall.beta, recall.pattern_norm) is None  # no softmax temperature
