import pytest
import torch

from neuromem.dense import (
    COMPONENT_BUDGET,
    PRESET_KEYWORDS,
    PRESET_TARGETS,
    PRESETS,
    Fusion,
    MultiModalConfig,
    MultiModalMemoryNetwork,
    count_parameters,
    preset,
)
from neuromem.dense.data import VOCAB_SIZE
from neuromem.errors import NeuromemError
from neuromem.memory import build_memory

torch.set_num_threads(1)

TINY = dict(
    latent_dim=32, num_layers=1, num_heads=2, vocab_size=VOCAB_SIZE, text_embed_dim=32, text_seq_len=24, image_size=8,
    patch_size=4, image_channels=1, audio_widths=(8, 16), audio_freq=16, audio_time=16, modality_memory_size=8,
    memory_size=16, fusion_hidden=64, write_rate=0.5, dropout=0.0,
)  # fmt: skip


def inputs(batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "text": torch.randint(2, VOCAB_SIZE, (batch, 7), generator=g),
        "images": torch.rand(batch, 1, 8, 8, generator=g),
        "audio": torch.rand(batch, 1, 16, 16, generator=g),
    }


def test_parameter_table_matches_the_document():
    """Totals near the document's ~12M / ~48.4M / ~200M, the default's components within 30% of its budget."""
    table = {name: count_parameters(name, by_component=True) for name in PRESETS}  # meta device: nothing allocated
    header = f"{'preset':8s}" + "".join(f"{k:>16s}" for k in table["default"])
    print("\n" + header + "\n" + "\n".join(f"{n:8s}" + "".join(f"{v / 1e6:15.2f}M" for v in row.values())
                                         for n, row in table.items()))  # fmt: skip
    assert abs(table["default"]["total"] - PRESET_TARGETS["default"]) / PRESET_TARGETS["default"] < 0.10
    assert abs(table["small"]["total"] - PRESET_TARGETS["small"]) / PRESET_TARGETS["small"] < 0.10
    assert abs(table["large"]["total"] - PRESET_TARGETS["large"]) / PRESET_TARGETS["large"] < 0.15
    for component, budget in COMPONENT_BUDGET.items():
        assert abs(table["default"][component] - budget) / budget <= 0.30, (component, table["default"][component])
    assert sum(v for k, v in table["default"].items() if k != "total") == table["default"]["total"]


def test_presets_are_the_documents_keywords_and_defaults():
    import inspect

    defaults = {k: p.default for k, p in inspect.signature(MultiModalMemoryNetwork).parameters.items()
                if p.default is not inspect.Parameter.empty}  # fmt: skip
    documented = dict(
        vocab_size=10000, text_embed_dim=512, text_seq_len=512, image_size=224, patch_size=16, image_channels=3,
        audio_channels=1, latent_dim=512, memory_size=128, num_heads=8, num_layers=4, dropout=0.1,
        ttt_mode="attention", feedback_steps=2,
    )  # fmt: skip
    assert {k: defaults[k] for k in documented} == documented
    assert PRESET_KEYWORDS["small"] == dict(latent_dim=256, memory_size=64, num_heads=4, num_layers=2, feedback_steps=1)
    assert PRESET_KEYWORDS["large"] == dict(latent_dim=1024, memory_size=256, num_heads=16, num_layers=6, feedback_steps=3)
    assert PRESETS["default"] == MultiModalConfig() and PRESETS["small"] == MultiModalConfig(**PRESET_KEYWORDS["small"])
    assert (PRESETS["default"].slots_per_modality, PRESETS["small"].slots_per_modality) == (64, 32)
    with pytest.raises(NeuromemError, match="preset"):
        preset("huge")
    with pytest.raises(ValueError, match="unknown network option"):
        MultiModalMemoryNetwork(dimension=3)
    with pytest.raises(ValueError, match="ttt_mode"):
        MultiModalMemoryNetwork(**TINY, ttt_mode="magic")


def test_fusion_handles_any_subset_and_masks_absent_ones():
    torch.manual_seed(0)
    fusion = Fusion(8, 16)
    t, i, a = torch.randn(3, 4, 8).unbind(0)
    assert fusion([t, i, a]).shape == (4, 8)
    # a lone modality: absent ones are zeros and masked, so it does not matter how they are given
    assert torch.equal(fusion([t, None, None]), fusion({"text": t}))
    assert not torch.allclose(fusion([t, None, None]), fusion([t, i, None]))
    with pytest.raises(ValueError, match="at least one"):
        fusion([None, None, None])
    fusion({"image": i, "audio": a}).sum().backward()
    assert fusion.project[0].weight.grad is None and fusion.project[1].weight.grad is not None


def test_forward_any_subset_and_named_outputs():
    torch.manual_seed(0)
    net = MultiModalMemoryNetwork(**TINY)
    x = inputs()
    out = net(**x, decode_to=["text", "image", "audio"])
    assert out["central_latent"].shape == (4, 32)
    assert set(out["embeddings"]) == {"text", "image", "audio"} and set(out["decoded"]) == {"text", "image", "audio"}
    assert all(torch.equal(out[f"decoded_{m}"], out["decoded"][m]) for m in ("text", "image", "audio"))
    only_audio = net(audio=x["audio"], decode_to=["image"])
    assert set(only_audio["embeddings"]) == {"audio"} and only_audio["decoded_image"].shape == (4, 32)
    with pytest.raises(ValueError, match="unknown modality"):
        net(audio=x["audio"], decode_to=["video"])
    pair = net(text=x["text"], images=x["images"])
    assert pair["central_latent"].shape == (4, 32)
    assert net.cross_modal_retrieval("text", x["text"], "audio").shape == (4, 32)
    assert set(net.complete("image", x["images"])) == {"text", "audio"}
    state = net.memory_state()
    assert set(state) == {"text_memory", "image_memory", "audio_memory", "central_memory"}
    assert state["central_memory"].shape == (16, 32) and state["text_memory"].shape == (8, 32)
    assert net.describe()["central_memory"] == "ttt 16x32"


@pytest.mark.parametrize("mode", ["attention", "gradient"])
def test_memories_change_between_eval_batches_and_reset_restores(mode):
    torch.manual_seed(1)
    net = MultiModalMemoryNetwork(**{**TINY, "ttt_mode": mode, "grad_lr": 0.5}).eval()
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
    assert torch.equal(again["decoded_audio"], first["decoded_audio"])


@pytest.mark.parametrize("memory", ["ttt", "hopfield"])
def test_registry_memory_as_central(memory):
    torch.manual_seed(2)
    central = build_memory(memory, {"text": 32, "image": 32, "audio": 32})
    net = MultiModalMemoryNetwork(central_memory=central, **TINY)
    out = net(**inputs(), decode_to=["text"])
    assert out["central_latent"].shape == (4, 32) and out["memory_output"] is not None
    out["decoded_text"].sum().backward()
    assert next(central.parameters()).grad is not None
    assert "central_memory" not in net.memory_state() and "registry module" in net.describe()["central_memory"]
    if memory == "ttt":
        assert any(k.startswith("central_memory.") for k in net.memory_state())
