"""hopfield-spiking starts with every layer firing (issue 16: it was silent at the default init)."""

import pytest
import torch

from neuromem.memory import build_memory
from neuromem.memory import hopfield_spiking, scl_spiking
from neuromem.memory.spiking_layers import init_for_rate
from neuromem.neurons.models import get_neuron
from neuromem.models.frontends import layer_kinds


def layer_rates(memory, x):
    with torch.no_grad():
        query = memory.queries["shd"](x)
        winners = memory.patterns(query)
        retrieved = memory.retrieval(winners)
    return [float(t.mean()) for t in (query, winners[..., : memory.num_patterns], retrieved)]


@pytest.mark.parametrize("neuron", ["lif", "loihi"])
@pytest.mark.parametrize("rate", [0.05, 0.3])
def test_every_layer_fires_at_init(neuron, rate):
    torch.manual_seed(0)
    memory = build_memory("hopfield-spiking", {"shd": 96}, dim=64, num_patterns=32, input_rate=rate, neuron=neuron).eval()
    x = (torch.rand(40, 4, 96, generator=torch.Generator().manual_seed(1)) < rate).float()
    rates = layer_rates(memory, x)
    # loihi starts sparser by design (gain 0.3: its readout integrates every spike), but never silent
    assert all(0.0005 < r < 0.6 for r in rates), rates
    # lateral inhibition keeps the pattern layer sparser than the query
    assert rates[1] < rates[0], rates


@pytest.mark.parametrize("neuron", ["lif", "loihi"])
def test_different_seeds_give_different_spikes(neuron):
    x = (torch.rand(40, 4, 20, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    outputs = []
    for seed in (7, 8):
        torch.manual_seed(seed)
        memory = build_memory("hopfield-spiking", {"shd": 20}, dim=16, num_patterns=8, neuron=neuron).eval()
        with torch.no_grad():
            outputs.append(memory({"shd": x}).representations["shd"])
    assert outputs[0].sum() > 0 and outputs[1].sum() > 0
    assert not torch.equal(outputs[0], outputs[1])


@pytest.mark.parametrize("neuron", ["lif", "loihi"])
def test_init_for_rate_scales_with_fan_in_and_rate(neuron):
    torch.manual_seed(0)
    layer = layer_kinds(neuron).linear(400, 300)
    init_for_rate(layer, input_rate=0.25, gain=0.5)
    weight = layer.synapse.weight.detach()
    assert weight.std().item() == pytest.approx(0.5 / (400 * 0.25) ** 0.5, rel=0.05)
    assert weight.abs().max() < 1.0
    if layer.synapse.bias is not None:
        assert torch.count_nonzero(layer.synapse.bias) == 0
    init_for_rate(layer, input_rate=1e-4, gain=1.0)  # a huge bound is clipped to the 8-bit weight range
    assert layer.synapse.weight.abs().max() < 1.0


def test_gain_default_depends_on_neuron_and_options_are_checked():
    torch.manual_seed(0)
    loihi = build_memory("hopfield-spiking", {"shd": 50}, dim=8, num_patterns=4, neuron="loihi")
    torch.manual_seed(0)
    explicit = build_memory("hopfield-spiking", {"shd": 50}, dim=8, num_patterns=4, gain=0.3, neuron="loihi")
    assert torch.equal(loihi.queries["shd"].synapse.weight, explicit.queries["shd"].synapse.weight)
    for bad in ({"gain": 0.0}, {"input_rate": 0.0}, {"input_rate": 1.5}):
        with pytest.raises(ValueError, match="hopfield-spiking option"):
            build_memory("hopfield-spiking", {"shd": 50}, dim=8, num_patterns=4, **bad)


@pytest.mark.parametrize("memory", ["hopfield-spiking", "scl-spiking"])
def test_surrogate_slope_changes_the_backward_pass_only(memory):
    x = (torch.rand(30, 4, 40, generator=torch.Generator().manual_seed(3)) < 0.3).float()
    results = []
    for slope in (None, 4.0):
        torch.manual_seed(0)
        module = build_memory(memory, {"shd": 40}, dim=16, neuron="loihi", surrogate_slope=slope)
        layers = [l for l in module.modules() if hasattr(l, "parameters_")]
        assert {l.neuron.surrogate_slope for l in layers} == {1.0 if slope is None else slope}
        inputs = x.clone().requires_grad_(True)
        spikes = module({"shd": inputs}).extras["output_spikes"]["shd"]
        (spikes * torch.linspace(-1, 1, spikes.shape[-1])).sum().backward()
        results.append((spikes.detach(), inputs.grad.clone()))
    assert torch.equal(results[0][0], results[1][0])  # same spikes: what a chip runs does not change
    assert not torch.allclose(results[0][1], results[1][1])  # different gradients
    with pytest.raises(ValueError, match=f"{memory} option surrogate_slope"):
        build_memory(memory, {"shd": 40}, dim=16, neuron="loihi", surrogate_slope=0.0)


@pytest.mark.parametrize("neuron", ["lif", "loihi"])
def test_relay_neurons_carry_the_query_beside_the_tied_patterns(neuron):
    torch.manual_seed(0)
    memory = build_memory("hopfield-spiking", {"shd": 30}, dim=12, num_patterns=5, relay=7, neuron=neuron)
    patterns, retrieval = memory.patterns, memory.retrieval
    assert retrieval.synapse.weight.shape == (12, 12)
    # the first 5 inputs of the retrieved layer are the patterns' transpose (tied), the 7 relay inputs its own
    assert torch.equal(retrieval.synapse.weight[:, :5], patterns.synapse.weight[:5].t())
    with torch.no_grad():
        patterns.synapse.weight[:5] += 0.01
    assert torch.equal(retrieval.synapse.weight[:, :5], patterns.synapse.weight[:5].t())
    recurrent = patterns.recurrent.weight if isinstance(patterns.recurrent, torch.nn.Module) else patterns.recurrent
    assert torch.count_nonzero(recurrent[5:]) == 0 and torch.count_nonzero(recurrent[:, 5:]) == 0
    assert torch.equal(recurrent[:5, :5], -0.25 * (1.0 - torch.eye(5)))
    x = (torch.rand(30, 4, 30) < 0.3).float()
    out = memory({"shd": x})
    assert out.extras["pattern_rates"]["shd"].shape == (4, 5)
    (out.extras["output_spikes"]["shd"].sum()).backward()
    assert retrieval.synapse.extra.grad is not None and patterns.synapse.weight.grad is not None
    default = build_memory("hopfield-spiking", {"shd": 30}, dim=12, num_patterns=5, neuron=neuron)
    assert default.patterns.synapse.weight.shape == (5 + 12, 12)  # relay defaults to dim
    with pytest.raises(ValueError, match="relay"):
        build_memory("hopfield-spiking", {"shd": 30}, dim=12, num_patterns=5, relay=-1, neuron=neuron)


@pytest.mark.parametrize("memory", ["hopfield-spiking", "scl-spiking"])
def test_rate_band_is_a_training_loss_that_leaves_the_spikes_alone(memory):
    x = (torch.rand(30, 4, 40, generator=torch.Generator().manual_seed(4)) < 0.3).float()
    labels = torch.tensor([0, 1, 0, 1])
    options = {"loss": "ce"} if memory == "scl-spiking" else {"num_patterns": 8}
    runs = {}
    for band in ({"rate_floor": 0.0, "rate_ceiling": 1.0}, {"rate_floor": 0.5, "rate_ceiling": 1.0},
                 {"rate_floor": 0.0, "rate_ceiling": 0.001}):
        torch.manual_seed(0)
        module = build_memory(memory, {"shd": 40}, dim=16, neuron="loihi", **band, **options).train()
        out = module({"shd": x})
        runs[tuple(band.values())] = (module, out, module.auxiliary_loss(out, labels))
    plain = runs[(0.0, 1.0)]
    assert plain[2].item() == 0.0  # no band: no penalty (scl with loss=ce has no other auxiliary loss)
    for key in ((0.5, 1.0), (0.0, 0.001)):  # most neurons fire below 0.5, some above 0.001
        module, out, loss = runs[key]
        assert torch.equal(plain[1].extras["output_spikes"]["shd"], out.extras["output_spikes"]["shd"])
        assert 0.0 < loss.item() <= 1.0, key
        loss.backward()
        first = module.queries["shd"] if memory == "hopfield-spiking" else module.encoders["shd"][0]
        assert first.synapse.weight.grad.abs().sum() > 0, key  # the penalty reaches the first memory layer
        module.eval()
        with torch.no_grad():
            assert module.auxiliary_loss(module({"shd": x}), labels).item() == 0.0  # nothing collected in eval
    assert build_memory(memory, {"shd": 40}, dim=16, neuron="loihi").rate_band == (*get_neuron("loihi").memory_tuning.rate_band, 1.0)
    assert build_memory(memory, {"shd": 40}, dim=16, neuron="lif").rate_band == (0.0, 1.0, 1.0)  # lif: no band
    for bad in ({"rate_floor": 1.0}, {"rate_floor": -0.1}, {"rate_floor": 0.2, "rate_ceiling": 0.1},
                {"rate_ceiling": 1.5}, {"rate_weight": -1.0}):
        with pytest.raises(ValueError, match=f"{memory} option rate_"):
            build_memory(memory, {"shd": 40}, dim=16, neuron="loihi", **bad)



@pytest.mark.parametrize("memory,module", [("hopfield-spiking", hopfield_spiking), ("scl-spiking", scl_spiking)])
def test_default_width_depends_on_neuron(memory, module):
    options = {"num_patterns": 4} if memory == "hopfield-spiking" else {"hidden": 8}
    loihi = build_memory(memory, {"shd": 20}, neuron="loihi", **options)
    lif = build_memory(memory, {"shd": 20}, neuron="lif", **options)
    assert loihi.output_size == get_neuron("loihi").memory_tuning.width == 256 and lif.output_size == 128
    if memory == "hopfield-spiking":
        assert loihi.patterns.synapse.weight.shape == (4 + 256, 256)  # relay follows dim
    with pytest.raises(ValueError, match=f"{memory} option dim"):
        build_memory(memory, {"shd": 20}, dim=0, neuron="loihi", **options)
