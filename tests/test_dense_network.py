import pytest
import torch

from neuromem.dense import PRESET_TARGETS, PRESETS, MultiModalMemoryNetwork, count_parameters, preset
from neuromem.dense.data import VOCAB_SIZE
from neuromem.errors import NeuromemError
from neuromem.memory import build_memory

torch.set_num_threads(1)

TINY = dict(
    dim=32, text_layers=1, text_heads=2, image_size=8, patch_size=4, image_channels=1, image_layers=1, image_heads=2,
    audio_channels=(8, 16), audio_freq=16, audio_time=16, modality_slots=8, central_slots=16, feedback_hidden=64,
    decoder_hidden=64, decoder_layers=2, max_text_length=24, write_rate=0.5,
)  # fmt: skip


def inputs(batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "text": torch.randint(2, VOCAB_SIZE, (batch, 7), generator=g),
        "images": torch.rand(batch, 1, 8, 8, generator=g),
        "audio": torch.rand(batch, 1, 16, 16, generator=g),
    }


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_sizes_within_ten_percent(name):
    count = count_parameters(name)  # built on the meta device: no memory, even for ~200M
    assert abs(count - PRESET_TARGETS[name]) / PRESET_TARGETS[name] < 0.10, (name, count)


def test_default_matches_issue_architecture():
    c = PRESETS["default"]
    assert (c.dim, c.text_layers, c.text_heads, c.image_size, c.patch_size, c.image_layers, c.image_heads) == (
        512, 4, 8, 224, 16, 4, 8)
    assert len(c.audio_channels) == 4 and (c.modality_slots, c.central_slots, c.feedback_steps) == (64, 128, 2)
    with pytest.raises(NeuromemError, match="preset"):
        preset("huge")
    with pytest.raises(ValueError, match="unknown network option"):
        preset("small", dimension=3)


def test_forward_any_subset_and_named_outputs():
    torch.manual_seed(0)
    net = MultiModalMemoryNetwork("small", **TINY)
    x = inputs()
    out = net(**x, decode_to=["text", "image", "audio"])
    assert out["central_latent"].shape == (4, 32)
    assert set(out["embeddings"]) == {"text", "image", "audio"} and set(out["decoded"]) == {"text", "image", "audio"}
    only_audio = net(audio=x["audio"], decode_to=["image"])
    assert set(only_audio["embeddings"]) == {"audio"} and only_audio["decoded"]["image"].shape == (4, 32)
    pair = net(text=x["text"], images=x["images"])
    assert pair["central_latent"].shape == (4, 32)
    assert net.cross_modal_retrieval("text", x["text"], "audio").shape == (4, 32)
    assert set(net.complete("image", x["images"])) == {"text", "audio"}
    state = net.memory_state()
    assert set(state) == {"memory.text", "memory.image", "memory.audio", "central"}
    assert state["central"].shape == (16, 32) and state["memory.text"].shape == (8, 32)


@pytest.mark.parametrize("mode", ["attention", "gradient"])
def test_memories_change_between_eval_batches_and_reset_restores(mode):
    torch.manual_seed(1)
    net = MultiModalMemoryNetwork("small", **{**TINY, "memory_mode": mode, "grad_lr": 0.5}).eval()
    trained = net.memory_state()
    probe = inputs(seed=5)
    with torch.no_grad():
        first = net(**probe, decode_to=["audio"])
        for seed in range(3):
            net(**inputs(batch=6, seed=10 + seed))
        changed = net.memory_state()
        assert all(not torch.equal(changed[k], trained[k]) for k in trained)
        assert not torch.equal(net(**probe)["central_latent"], first["central_latent"])
        net.reset()
        assert all(torch.equal(net.memory_state()[k], trained[k]) for k in trained)
        again = net(**probe, decode_to=["audio"])
    assert torch.equal(again["central_latent"], first["central_latent"])
    assert torch.equal(again["decoded"]["audio"], first["decoded"]["audio"])


@pytest.mark.parametrize("memory", ["ttt", "hopfield"])
def test_registry_memory_as_central(memory):
    torch.manual_seed(2)
    central = build_memory(memory, {"text": 32, "image": 32, "audio": 32})
    net = MultiModalMemoryNetwork("small", central_memory=central, **TINY)
    out = net(**inputs(), decode_to=["text"])
    assert out["central_latent"].shape == (4, 32) and out["memory_output"] is not None
    out["decoded"]["text"].sum().backward()
    assert next(central.parameters()).grad is not None
    assert "central" not in net.memory_state()
    if memory == "ttt":
        assert any(k.startswith("central.") for k in net.memory_state())
