import pytest
import torch
from torch import nn
from torch.nn import functional as F

from neuromem.memory import build_memory
from neuromem.memory.functional.cmhan import (
    SettleParameters,
    energy_gradients,
    paired_info_nce,
    settle,
    total_energy,
    within_energy,
)

from conftest import toy_problem_accuracy, toy_spikes


def random_system(seed=0, dim=6, patterns=5, batch=4):
    g = torch.Generator().manual_seed(seed)
    states = {m: torch.randn(batch, dim, generator=g) for m in ("a", "b", "c")}
    stored = {m: torch.randn(patterns, dim, generator=g) for m in states}
    associations = {(m, n): torch.randn(dim, dim, generator=g) / dim**0.5 for m in states for n in states if m != n}
    return states, stored, associations


def test_analytic_gradient_matches_autograd():
    states, stored, associations = random_system()
    p = SettleParameters(coupling=0.7, temperature=0.3)
    leaves = {m: s.clone().requires_grad_() for m, s in states.items()}
    autograd = torch.autograd.grad(total_energy(leaves, stored, associations, p).sum(), list(leaves.values()))
    analytic = energy_gradients(states, stored, associations, p)
    for m, expected in zip(leaves, autograd):
        torch.testing.assert_close(analytic[m], expected, rtol=1e-5, atol=1e-6)


def test_within_energy_is_nonnegative():
    states, stored, _ = random_system(seed=1, batch=64)
    assert (within_energy(10 * states["a"], 3 * stored["a"], 0.1) >= -1e-5).all()


def test_energy_decreases_along_retrieval():
    states, stored, associations = random_system(seed=2)
    settled = settle(states, stored, associations, SettleParameters(coupling=1.0, temperature=0.5, step_size=0.2, steps=30, tolerance=0), record_energy=True)
    energies = torch.stack(settled.energies)  # (steps + 1, batch)
    assert settled.steps == 30
    assert (energies[1:] <= energies[:-1] + 1e-6).all()
    assert (energies[-1] < energies[0] - 1e-3).all()


def test_stored_pattern_is_a_fixed_point_without_coupling():
    stored = {"a": torch.eye(8)[:5] * 1.0}  # orthonormal, well separated
    p = SettleParameters(coupling=0.0, temperature=0.05, step_size=1.0, steps=10, tolerance=0)
    settled = settle({"a": stored["a"].clone()}, stored, {}, p)
    torch.testing.assert_close(settled.states["a"], stored["a"], atol=1e-4, rtol=0)
    # a noisy cue is cleaned up to its pattern
    noisy = stored["a"] + 0.2 * torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(settle({"a": noisy}, stored, {}, p).states["a"], stored["a"], atol=1e-3, rtol=0)


def test_tolerance_stops_settling_early():
    states, stored, associations = random_system(seed=3)
    loose = SettleParameters(coupling=1.0, temperature=0.5, step_size=0.5, steps=200, tolerance=1e-3)
    assert settle(states, stored, associations, loose).steps < 200
    exact = SettleParameters(coupling=1.0, temperature=0.5, step_size=0.5, steps=200, tolerance=0)
    assert settle(states, stored, associations, exact).steps == 200


def test_info_nce_prefers_aligned_pairs_and_masks_same_concept():
    g = torch.Generator().manual_seed(4)
    a = torch.randn(8, 5, generator=g)
    assert paired_info_nce(a, a, 0.1) < paired_info_nce(a, torch.randn(8, 5, generator=g), 0.1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    twins = a.clone()
    twins[1] = twins[0]  # a same-concept duplicate is not counted as a negative
    assert paired_info_nce(twins, twins, 0.1, labels) < paired_info_nce(twins, twins, 0.1)


def test_contrast_only_with_two_modalities_present():
    torch.manual_seed(0)
    options = dict(dim=16, gamma=0.0, alpha=0.0, recall_weight=0.0)
    with_contrast = build_memory("cmhan", {"shd": 24, "nmnist": 24}, beta=1.0, **options)
    without = build_memory("cmhan", {"shd": 24, "nmnist": 24}, beta=0.0, **options)
    without.load_state_dict(with_contrast.state_dict())
    audio, labels = toy_spikes(torch.Generator().manual_seed(0))
    visual, _ = toy_spikes(torch.Generator().manual_seed(1), shift=1)
    single = {"shd": audio}
    assert with_contrast.auxiliary_loss(with_contrast(single), labels).item() == 0.0
    joint = {"shd": audio, "nmnist": visual}
    assert with_contrast.auxiliary_loss(with_contrast(joint), labels).item() > 0.0
    assert without.auxiliary_loss(without(joint), labels).item() == 0.0


def test_absent_modality_starts_at_zeros_or_prior():
    torch.manual_seed(0)
    audio, _ = toy_spikes(torch.Generator().manual_seed(0))
    for init in ("zeros", "prior"):
        memory = build_memory("cmhan", {"shd": 24, "nmnist": 24}, dim=16, steps=0, absent_init=init)
        if init == "prior":
            with torch.no_grad():
                memory.priors["nmnist"].fill_(0.25)
        start = memory({"shd": audio}).extras["states"]["nmnist"]  # steps=0: nothing settles
        assert start.shape == (audio.shape[1], 16)
        assert torch.all(start == (0.0 if init == "zeros" else 0.25))
        # retrieve reports it as a representation: (state + start) * sqrt(dim) with the residual
        torch.testing.assert_close(memory.retrieve("shd", audio, "nmnist"), 2 * start * 16**0.5)


def test_aliases_and_invalid_options():
    memory = build_memory("cmhan", {"shd": 8}, **{"lambda": 0.3, "tau": 0.2, "eta": 0.1})
    assert memory.settle_parameters.coupling == 0.3
    assert memory.settle_parameters.temperature == 0.2
    assert memory.settle_parameters.step_size == 0.1
    for option, value in [("tau", 0), ("eta", 1.5), ("lambda", -1), ("steps", -1), ("tolerance", -1), ("dim", 0),
                          ("num_patterns", 0), ("residual", "yes"), ("alpha", -1), ("beta", -1), ("gamma", -1), ("absent_init", "ones")]:
        with pytest.raises(ValueError, match={"tau": "temperature", "eta": "step_size", "lambda": "coupling"}.get(option, option)):
            build_memory("cmhan", {"shd": 8}, **{option: value})
    with pytest.raises(TypeError, match="bogus"):
        build_memory("cmhan", {"shd": 8}, bogus=1)


def train_joint(memory, audio, visual, labels, iterations):
    readouts = nn.ModuleDict({m: nn.Linear(memory.output_size, 4) for m in ("shd", "nmnist")})
    opt = torch.optim.Adam([*memory.parameters(), *readouts.parameters()], lr=3e-3)
    for _ in range(iterations):
        out = memory({"shd": audio, "nmnist": visual})
        loss = sum(F.cross_entropy(readouts[m](out.representations[m]), labels) for m in readouts)
        loss = loss + memory.auxiliary_loss(out, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return readouts


def test_retrieval_of_an_absent_modality_moves_toward_its_pair():
    torch.manual_seed(0)
    audio, labels = toy_spikes(torch.Generator().manual_seed(0))
    visual, _ = toy_spikes(torch.Generator().manual_seed(1), channels=32, shift=1)
    test_audio, test_labels = toy_spikes(torch.Generator().manual_seed(2))
    test_visual, _ = toy_spikes(torch.Generator().manual_seed(3), channels=32, shift=1)
    memory = build_memory("cmhan", {"shd": 24, "nmnist": 32}, dim=32, absent_init="zeros")
    train_joint(memory, audio, visual, labels, 40)
    with torch.no_grad():
        own = memory({"nmnist": test_visual}).representations["nmnist"]  # the target's own representation
        recalled = memory.retrieve("shd", test_audio, "nmnist")
        # settling moved the absent state from its start (zeros) toward the paired representation ...
        assert ((recalled - own).norm(dim=-1) < own.norm(dim=-1)).float().mean() > 0.9
        assert F.cosine_similarity(recalled, own).mean() > 0.5
        # ... and recall by nearest neighbour finds the right concept
        nearest = (F.normalize(recalled, dim=-1) @ F.normalize(own, dim=-1).t()).argmax(-1)
        assert (test_labels[nearest] == test_labels).float().mean() > 0.9


def test_learns_a_toy_spike_problem():
    torch.manual_seed(0)
    assert toy_problem_accuracy(build_memory("cmhan", {"shd": 24}, dim=32), steps=40) > 0.8  # chance is 0.25


def test_representation_is_the_scaled_settled_state():
    torch.manual_seed(0)
    audio, _ = toy_spikes(torch.Generator().manual_seed(0))
    for residual in (False, True):
        memory = build_memory("cmhan", {"shd": 24}, dim=16, residual=residual)
        out = memory({"shd": audio})
        expected = out.extras["states"]["shd"] + (out.extras["initial"]["shd"] if residual else 0.0)
        torch.testing.assert_close(out.representations["shd"], expected * 4.0)


def test_representation_of_a_present_modality_does_not_depend_on_its_partner():
    # a joint network is trained on pairs but tested (and cued) one sense at a time: with the default
    # representation "alone" a sense's representation in a paired batch is the one it has alone, so the
    # readout cannot learn to lean on the partner's state (joint cmhan lost 6-9 points on the embedded data)
    torch.manual_seed(0)
    audio, _ = toy_spikes(torch.Generator().manual_seed(0))
    visual, _ = toy_spikes(torch.Generator().manual_seed(1), channels=32, shift=1)
    for representation in ("alone", "joint"):
        memory = build_memory("cmhan", {"shd": 24, "nmnist": 32}, dim=16, representation=representation)
        with torch.no_grad():
            memory.priors["nmnist"].normal_()  # a trained prior, so the absent start is not zeros
            paired = memory({"shd": audio, "nmnist": visual}).representations
            for m, x in (("shd", audio), ("nmnist", visual)):
                own = memory({m: x}).representations[m]
                if representation == "alone":
                    torch.testing.assert_close(paired[m], own)
                else:  # settled together, the coupling moves each state toward its partner's
                    assert (paired[m] - own).abs().max() > 1e-2


def test_recall_loss_trains_what_retrieve_returns():
    torch.manual_seed(0)
    audio, labels = toy_spikes(torch.Generator().manual_seed(0))
    visual, _ = toy_spikes(torch.Generator().manual_seed(1), channels=32, shift=1)
    memory = build_memory("cmhan", {"shd": 24, "nmnist": 32}, dim=16, alpha=0.0, beta=0.0, gamma=0.0)
    assert memory.representation == "alone"
    assert memory.recall_weight > 0  # on by default: without it joint recall@1 fell to 0.42 / 0.31
    out = memory({"shd": audio, "nmnist": visual})
    recalled = memory.readable(out.extras["alone"]["shd"]["nmnist"], memory.priors["nmnist"].expand(len(labels), -1))
    torch.testing.assert_close(recalled, memory.retrieve("shd", audio, "nmnist"))
    loss = memory.auxiliary_loss(out, labels)  # the recall term alone
    assert loss.item() > 0
    association, prior = memory.associations["shd->nmnist"], memory.priors["nmnist"]
    grad_association, grad_prior = torch.autograd.grad(loss, [association, prior])
    assert grad_association.abs().max() > 0 and grad_prior.abs().max() > 0
