import pytest
import torch
from torch import nn

from neuromem.memory import build_memory, memory_info, memory_names
from neuromem.memory.functional.ttt import TTTParameters, gated_write, gradient_write, reconstruction_loss
from neuromem.memory.ttt import TTTMemoryBlock, cross_modal_supcon

torch.set_num_threads(1)


def spikes(T, B, D, seed=0, rate=0.2):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, D, generator=g) < rate).float()


def test_registered_and_shapes():
    assert "ttt" in memory_names()
    assert memory_info("ttt").cls.adapts_at_test_time is True
    torch.manual_seed(0)
    memory = build_memory("ttt", {"nmnist": 20, "shd": 30}, dim=16, num_slots=4, central_slots=6)
    out = memory({"nmnist": spikes(7, 5, 20), "shd": spikes(9, 5, 30)})
    assert memory.output_size == 16
    assert out.representations["nmnist"].shape == (5, 16) and out.representations["shd"].shape == (5, 16)
    # any subset of modalities
    assert memory({"shd": spikes(9, 3, 30)}).representations["shd"].shape == (3, 16)
    assert memory.retrieve("shd", spikes(9, 3, 30), "nmnist").shape == (3, 16)


def test_gated_write_matches_rule_for_one_sample():
    slots = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    weights = torch.tensor([[0.25, 0.75]])
    values = torch.tensor([[[3.0, 3.0], [-1.0, 1.0]]])
    gates = torch.tensor([[0.5, 0.2]])
    new = gated_write(slots, weights, values, gates)
    # slot0: gw = 0.125 -> [1*(0.875) + 3*0.125, 0 + 3*0.125]; slot1: gw = 0.15 -> [-0.15, 2*0.85 + 0.15]
    expected = torch.tensor([[1.25, 0.375], [-0.15, 1.85]])
    assert torch.allclose(new, expected)
    assert torch.equal(slots, torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # pure: input untouched


def test_gradient_write_lowers_the_self_supervised_loss():
    torch.manual_seed(0)
    slots, queries, decoder = torch.randn(8, 6), torch.randn(10, 6), nn.Linear(6, 6)
    params = TTTParameters(grad_steps=5, grad_lr=0.05)
    before = reconstruction_loss(slots, queries, params.beta, decoder)
    after = reconstruction_loss(gradient_write(slots, queries, params, decoder), queries, params.beta, decoder)
    assert after < before - 1e-3


@pytest.mark.parametrize("mode,drift", [("attention", False), ("gradient", False), ("attention", True)])
def test_eval_writes_persist_and_reset_restores_exactly(mode, drift):
    torch.manual_seed(1)
    memory = build_memory("ttt", {"shd": 12}, dim=8, num_slots=4, central_slots=5, mode=mode, write_rate=0.5,
                          grad_lr=0.5, drift_compensation=drift)  # fmt: skip
    memory.eval()
    probe = spikes(6, 4, 12, seed=3)
    with torch.no_grad():
        trained = {k: v.clone() for k, v in memory.memory_state().items()}
        first = memory({"shd": probe}).representations["shd"]  # read-then-write: answered by the trained slots
        for seed in range(4):
            memory({"shd": spikes(6, 8, 12, seed=10 + seed, rate=0.5)})
        adapted = memory.memory_state()
        assert any(not torch.equal(adapted[k], trained[k]) for k in trained)
        assert not torch.equal(memory({"shd": probe}).representations["shd"], first)
        memory.reset_memory()
        assert all(torch.equal(memory.memory_state()[k], trained[k]) for k in trained)
        assert torch.equal(memory({"shd": probe}).representations["shd"], first)
    # trained slots are parameters and never written
    assert all(torch.equal(memory.blocks()[k].slots, trained[k]) for k in trained)


def test_state_save_load_roundtrip_and_training_mode_discards():
    torch.manual_seed(2)
    memory = build_memory("ttt", {"a": 5}, dim=8, num_slots=3, central_slots=3, write_rate=1.0).eval()
    with torch.no_grad():
        memory({"a": spikes(4, 6, 5, rate=0.6)})
        saved = memory.memory_state()
        probe = memory({"a": spikes(4, 2, 5, seed=9)}).representations["a"]
        memory.reset_memory()
        memory.load_memory_state(saved)
        assert torch.equal(memory({"a": spikes(4, 2, 5, seed=9)}).representations["a"], probe)
    memory.train()
    assert all(block.adapted is None for block in memory.blocks().values())


def test_training_learns_write_networks_through_unrolled_writes():
    torch.manual_seed(3)
    memory = build_memory("ttt", {"a": 5, "b": 7}, dim=8, num_slots=3, central_slots=3).train()
    out = memory({"a": spikes(4, 6, 5), "b": spikes(4, 6, 7, seed=1)})
    loss = sum(r.pow(2).sum() for r in out.representations.values())
    loss = loss + memory.auxiliary_loss(out, torch.tensor([0, 1, 0, 1, 2, 2]))
    loss.backward()
    block = memory.modality_memories["a"]
    assert block.value_net[0].weight.grad.abs().sum() > 0 and block.gate_net[0].weight.grad.abs().sum() > 0
    assert block.adapted is None  # nothing persists in training


def test_validation_names_option():
    with pytest.raises(ValueError, match="write_rate"):
        build_memory("ttt", {"a": 3}, write_rate=2.0)
    with pytest.raises(ValueError, match="mode"):
        build_memory("ttt", {"a": 3}, mode="magic")
    with pytest.raises(ValueError, match="feedback_steps"):
        build_memory("ttt", {"a": 3}, feedback_steps=-1)
    with pytest.raises(ValueError, match="num_slots"):
        TTTMemoryBlock(0, 4)


def test_same_seed_same_numbers():
    outs = []
    for _ in range(2):
        torch.manual_seed(5)
        memory = build_memory("ttt", {"a": 5}, dim=8, num_slots=3, central_slots=3).eval()
        with torch.no_grad():
            memory({"a": spikes(4, 6, 5)})
            outs.append(memory({"a": spikes(4, 6, 5, seed=1)}).representations["a"])
    assert torch.equal(outs[0], outs[1])


def test_supcon_prefers_aligned_embeddings():
    labels = torch.tensor([0, 1, 2, 0])
    a = torch.eye(3)[labels]
    assert cross_modal_supcon(a, a, labels, 0.1) < cross_modal_supcon(a, a.roll(1, 0), labels, 0.1)


def test_learns_a_joint_task_and_aligns_modalities():
    # two senses of the same 3 concepts: each concept drives its own channels
    torch.manual_seed(0)

    def batch(n, seed):
        g = torch.Generator().manual_seed(seed)
        labels = torch.randint(0, 3, (n,), generator=g)
        rates_a = 0.05 + 0.5 * nn.functional.one_hot(labels, 3).float().repeat_interleave(4, 1)  # 12 channels
        rates_b = 0.05 + 0.5 * nn.functional.one_hot((labels + 1) % 3, 3).float().repeat_interleave(5, 1)  # 15
        a = (torch.rand(6, n, 12, generator=g) < rates_a).float()
        b = (torch.rand(6, n, 15, generator=g) < rates_b).float()
        return {"a": a, "b": b}, labels

    memory = build_memory("ttt", {"a": 12, "b": 15}, dim=16, num_slots=4, central_slots=8, align_weight=1.0)
    readout = nn.ModuleDict({"a": nn.Linear(16, 3), "b": nn.Linear(16, 3)})
    optim = torch.optim.Adam([*memory.parameters(), *readout.parameters()], lr=1e-2)
    for step in range(60):
        inputs, labels = batch(32, step)
        out = memory(inputs)
        loss = sum(nn.functional.cross_entropy(readout[m](r), labels) for m, r in out.representations.items())
        loss = loss + memory.auxiliary_loss(out, labels)
        optim.zero_grad()
        loss.backward()
        optim.step()
    memory.eval()
    inputs, labels = batch(60, 999)
    with torch.no_grad():
        out = memory(inputs)
        accuracy = {m: (readout[m](r).argmax(1) == labels).float().mean().item() for m, r in out.representations.items()}
        cue = memory.retrieve("a", inputs["a"], "b")
        gallery = memory({"b": inputs["b"]}).representations["b"]
        sims = nn.functional.normalize(cue, dim=1) @ nn.functional.normalize(gallery, dim=1).t()
        sims.fill_diagonal_(-2)  # retrieve another sample, not the pair itself
        retrieved_same = (labels[sims.argmax(1)] == labels).float().mean().item()
    assert min(accuracy.values()) > 0.9, accuracy
    assert retrieved_same > 0.9


def test_gated_write_of_a_batch_is_a_convex_step():
    slots = torch.zeros(2, 1)
    weights = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.25]])
    values = torch.tensor([[[2.0], [9.0]], [[4.0], [9.0]], [[9.0], [8.0]]])
    new = gated_write(slots, weights, values, torch.ones(3, 2))
    # slot 0: total attention 2 -> the attention-weighted mean of its values; slot 1: 0.25 of the way to 8
    assert torch.allclose(new, torch.tensor([[3.0], [2.0]]))
