"""The contract every registered memory module keeps, whatever its mechanism."""

import io
from itertools import combinations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from neuromem.memory import MemoryModule, build_memory, memory_info, memory_names

SIZES = {"shd": 12, "nmnist": 10}
STEPS, BATCH = 8, 6
LABELS = torch.tensor([0, 1, 2, 0, 1, 2])
SUBSETS = [dict.fromkeys(c) for r in (1, 2) for c in combinations(SIZES, r)]


def spikes(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: (torch.rand(STEPS, BATCH, d, generator=g) < 0.3).float() for m, d in SIZES.items()}


def build(name: str, seed: int = 0, sizes=SIZES) -> MemoryModule:
    torch.manual_seed(seed)
    return build_memory(name, sizes)


def subset(inputs, keys):
    return {m: inputs[m] for m in keys}


@pytest.fixture(params=memory_names())
def name(request):
    return request.param


def test_registry_entry(name):
    info = memory_info(name)
    assert info.cls.name == name and info.summary
    memory = build(name)
    assert isinstance(memory, MemoryModule)
    assert isinstance(memory.output_size, int) and memory.output_size > 0


def test_options_are_one_frozen_record(name):
    """The module's options are its registered record: declared once, checked once, read by the CLI."""
    import dataclasses

    from neuromem.cli import check_memory_options
    from neuromem.errors import NeuromemError

    record = memory_info(name).options
    assert dataclasses.is_dataclass(record) and record.__dataclass_params__.frozen
    memory = build(name)
    assert type(memory.options) is record and memory.options == record()
    with pytest.raises(dataclasses.FrozenInstanceError):
        memory.options.dim = 3
    with pytest.raises(TypeError, match=f"{name} got unexpected option.*bogus.*valid: .*dim"):
        build_memory(name, SIZES, bogus=1)
    # the network's neuron model and its parameters are set by build_network (--neuron, --neuron-option), not listed
    own = [k for k in record.option_fields() if k not in ("neuron", "neuron_params")]
    with pytest.raises(NeuromemError, match=f"no option 'bogus'; valid: {', '.join(own)}$"):
        check_memory_options(name, {"bogus": 1})


@pytest.mark.parametrize("training", [True, False])
def test_shapes_for_any_subset_of_modalities(name, training):
    memory = build(name).train(training)
    inputs = spikes(1)
    for keys in SUBSETS:
        out = memory(subset(inputs, keys))
        assert set(out.representations) == set(keys)
        for representation in out.representations.values():
            assert representation.shape == (BATCH, memory.output_size)
            assert torch.isfinite(representation).all()


def test_one_modality_network_of_any_name(name):
    memory = build(name, sizes={"probe": 8})
    out = memory({"probe": (torch.rand(STEPS, BATCH, 8) < 0.3).float()})
    assert out.representations["probe"].shape == (BATCH, memory.output_size)


def test_retrieve_gives_a_target_representation(name):
    memory = build(name).eval()
    with torch.no_grad():
        recalled = memory.retrieve("shd", spikes(2)["shd"], "nmnist")
    assert recalled.shape == (BATCH, memory.output_size)
    assert torch.isfinite(recalled).all()


@pytest.mark.parametrize("training", [True, False])
def test_same_seed_same_numbers(name, training):
    results = []
    for _ in range(2):
        memory = build(name, seed=7).train(training)
        torch.manual_seed(3)
        out = memory(spikes(3))
        results.append((out.representations, memory.auxiliary_loss(out, LABELS)))
    (first, aux_a), (second, aux_b) = results
    for m in SIZES:
        assert torch.equal(first[m], second[m])
    assert torch.equal(aux_a, aux_b)
    different = build(name, seed=8).train(training)
    torch.manual_seed(3)
    assert not torch.equal(different(spikes(3)).representations["shd"], first["shd"])


@pytest.mark.parametrize("keys", SUBSETS, ids=lambda k: "+".join(k))
def test_auxiliary_loss_is_a_finite_scalar_and_training_gets_gradients(name, keys):
    memory = build(name).train()
    readouts = nn.ModuleDict({m: nn.Linear(memory.output_size, 3) for m in SIZES})
    out = memory(subset(spikes(4), keys))
    aux = memory.auxiliary_loss(out, LABELS)
    assert aux.dim() == 0 and torch.isfinite(aux)
    parameters = [p for p in memory.parameters() if p.requires_grad]
    if aux.requires_grad:
        grads = torch.autograd.grad(aux, parameters, retain_graph=True, allow_unused=True)
        assert all(g is None or torch.isfinite(g).all() for g in grads)
    loss = sum(F.cross_entropy(readouts[m](r), LABELS) for m, r in out.representations.items()) + aux
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in parameters)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in parameters), "no memory parameter learns"


def test_state_dict_round_trip(name):
    source, target = build(name, seed=0).eval(), build(name, seed=1).eval()
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    target.load_state_dict(torch.load(buffer))
    inputs = spikes(5)
    with torch.no_grad():
        expected, got = source(inputs).representations, target(inputs).representations
    for m in SIZES:
        assert torch.equal(expected[m], got[m])


def test_reset_memory_is_callable(name):
    memory = build(name).eval()
    with torch.no_grad():
        memory(spikes(6))
        memory.reset_memory()
        after_reset = memory(spikes(6)).representations["shd"]
        memory.reset_memory()
        fresh = build(name).eval()(spikes(6)).representations["shd"]
    assert torch.equal(after_reset, fresh)
