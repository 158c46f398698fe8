"""Every code example of the tri-modal network's design document ("Multimodal Memory Network with
Test-Time Training"), copied as it is written and run in order, like a doctest session.

The document imports from its own package (`architectures`); here that name is neuromem.dense. Its
examples call `.cuda()`: where no GPU is present, `.cuda()` leaves tensors and modules on the CPU.
Names the examples use but never define (`batch`, `seq_len`, `text_query`, `batch1`, ...) are given
small values (batch 2) before the examples run. The document's shapes are checked after each one.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import neuromem.dense
from neuromem.dense.losses import info_nce
from neuromem.memory.functional.ttt import read_weights

torch.set_num_threads(1)

# --- the document's examples, verbatim (section title -> code) ---------------------------------------
EXAMPLES = {
    "Basic Single Modality": """\
from architectures import MultiModalMemoryNetwork

model = MultiModalMemoryNetwork().cuda()

# Process text
text_tokens = torch.randint(0, 10000, (batch, seq_len)).cuda()
outputs = model(text=text_tokens)
latent = outputs['central_latent']  # (batch, 512)
""",
    "Multimodal Fusion": """\
# Process all modalities together
text_tokens = torch.randint(0, 10000, (4, 32)).cuda()
images = torch.randn(4, 3, 224, 224).cuda()
audio = torch.randn(4, 1, 128, 128).cuda()

outputs = model(text=text_tokens, images=images, audio=audio)
unified_latent = outputs['central_latent']  # Fused representation
""",
    "Cross-Modal Decoding": """\
# Encode text, decode to image and audio
outputs = model(
    text=text_tokens,
    decode_to=['image', 'audio']
)

text_to_image = outputs['decoded_image']
text_to_audio = outputs['decoded_audio']
""",
    "Cross-Modal Retrieval": """\
# Query with text, retrieve image representation
retrieved_image = model.cross_modal_retrieval(
    query_modality='text',
    query_data=text_query,
    target_modality='image'
)

# Query with image, retrieve audio
retrieved_audio = model.cross_modal_retrieval(
    query_modality='image',
    query_data=image_query,
    target_modality='audio'
)
""",
    "Accessing Memory States": """\
# Access central memory
central_mem = model.central_memory.memory  # (128, 512)

# Access modality-specific memories
text_mem = model.text_memory.memory     # (64, 512)
image_mem = model.image_memory.memory   # (64, 512)
audio_mem = model.audio_memory.memory   # (64, 512)
""",
    "Test-Time Training in Action": """\
model.eval()  # Important: TTT works during evaluation

# Process first batch - memory adapts
with torch.no_grad():
    outputs1 = model(images=batch1)

# Process second batch - uses adapted memory
with torch.no_grad():
    outputs2 = model(images=batch2)
    
# Memory has been updated between batches!
""",
    "Default Configuration": """\
model = MultiModalMemoryNetwork(
    # Text
    vocab_size=10000,
    text_embed_dim=512,
    text_seq_len=512,
    
    # Image
    image_size=224,
    patch_size=16,
    image_channels=3,
    
    # Audio
    audio_channels=1,
    
    # Central
    latent_dim=512,
    memory_size=128,
    num_heads=8,
    num_layers=4,
    dropout=0.1,
    
    # TTT
    ttt_mode="attention",
    feedback_steps=2,
)
""",
    "For Smaller Models": """\
model = MultiModalMemoryNetwork(
    latent_dim=256,
    memory_size=64,
    num_heads=4,
    num_layers=2,
    feedback_steps=1,
)
# ~12M parameters
""",
    "For Larger Models": """\
model = MultiModalMemoryNetwork(
    latent_dim=1024,
    memory_size=256,
    num_heads=16,
    num_layers=6,
    feedback_steps=3,
)
# ~200M parameters
""",
    "Contrastive Loss": """\
text_emb = model(text=text_tokens)['central_latent']
image_emb = model(images=images)['central_latent']

# InfoNCE / CLIP-style loss
loss = contrastive_loss(text_emb, image_emb)
""",
    "Reconstruction Loss": """\
outputs = model(text=text_tokens, decode_to=['text'])
reconstructed = outputs['decoded_text']
loss = mse_loss(reconstructed, original_text_embedding)
""",
    "Cross-Modal Prediction": """\
# Predict image from text
outputs = model(text=text_tokens, decode_to=['image'])
predicted_image = outputs['decoded_image']
target_image = model.image_encoder(ground_truth_images)
loss = mse_loss(predicted_image, target_image.detach())
""",
}

# Blocks that describe the network's internals, run against its real components ("Key Components",
# "How TTT Works Here"). The document's "TTT Mechanism" block is numbered prose, not Python: its four
# steps are the attention-based TTT formula below, checked in test_attention_ttt_formula.
FUSION = """\
fused = Fusion([text_encoding, image_encoding, audio_encoding])
# Even works with missing modalities (uses zeros for absent ones)
"""
FEEDBACK = """\
for step in range(feedback_steps):
    latent = latent + feedback_network(latent)
    latent = central_memory.read(latent)  # Re-read from memory
"""
ATTENTION_TTT = """\
# 1. Compute attention between input and memory
attention_weights = softmax(input @ memory.T / temperature)

# 2. Generate update proposal
update = update_network([memory_slot, input_summary])

# 3. Gate the update
gate = gate_network([memory_slot, input_summary])

# 4. Apply weighted update
memory_slot = memory_slot * (1 - gate * weight) + update * gate * weight
"""

BATCH = 2  # the document's unnamed `batch`


def _cuda_where_possible(monkeypatch) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    monkeypatch.setattr(nn.Module, "cuda", lambda self, *a, **k: self)
    return torch.device("cpu")


@pytest.fixture(scope="module")
def session():
    """The document's examples run in order in one namespace; `run(title)` runs those not yet run up to it."""
    patch = pytest.MonkeyPatch()
    device = _cuda_where_possible(patch)
    patch.setitem(sys.modules, "architectures", types.SimpleNamespace(**vars(neuromem.dense)))
    g = torch.Generator().manual_seed(0)
    namespace = {
        "torch": torch, "batch": BATCH, "seq_len": 16,
        "text_query": torch.randint(0, 10000, (BATCH, 16), generator=g).to(device),
        "image_query": torch.randn(BATCH, 3, 224, 224, generator=g).to(device),
        "batch1": torch.randn(BATCH, 3, 224, 224, generator=g).to(device),
        "batch2": torch.randn(BATCH, 3, 224, 224, generator=g).to(device) + 1.0,
        "contrastive_loss": info_nce, "mse_loss": F.mse_loss,
        "ground_truth_images": torch.randn(4, 3, 224, 224, generator=g).to(device),
    }  # fmt: skip
    done: list[str] = []

    def run(title: str) -> dict:
        torch.manual_seed(0)
        for name in list(EXAMPLES)[: list(EXAMPLES).index(title) + 1]:
            if name in done:
                continue
            if name == "Reconstruction Loss":  # the document's undefined target: the text encoder's own embedding
                namespace["original_text_embedding"] = namespace["model"].text_encoder(namespace["text_tokens"]).detach()
            exec(compile(EXAMPLES[name], f"<document: {name}>", "exec"), namespace)
            done.append(name)
        return namespace

    yield run
    patch.undo()


def test_basic_single_modality(session):
    ns = session("Basic Single Modality")
    assert ns["latent"].shape == (BATCH, 512)


def test_multimodal_fusion(session):
    ns = session("Multimodal Fusion")
    assert ns["unified_latent"].shape == (4, 512)


def test_cross_modal_decoding(session):
    ns = session("Cross-Modal Decoding")
    assert ns["text_to_image"].shape == (4, 512) and ns["text_to_audio"].shape == (4, 512)


def test_cross_modal_retrieval(session):
    ns = session("Cross-Modal Retrieval")
    assert ns["retrieved_image"].shape == (BATCH, 512) and ns["retrieved_audio"].shape == (BATCH, 512)


def test_accessing_memory_states(session):
    ns = session("Accessing Memory States")
    assert ns["central_mem"].shape == (128, 512)
    assert ns["text_mem"].shape == ns["image_mem"].shape == ns["audio_mem"].shape == (64, 512)


def test_test_time_training_in_action(session):
    ns = session("Accessing Memory States")
    model = ns["model"]
    trained = {k: v.clone() for k, v in model.memory_state().items()}
    session("Test-Time Training in Action")
    # "Memory has been updated between batches!": image and central memories, not text / audio
    adapted = model.memory_state()
    assert not torch.equal(adapted["image_memory"], trained["image_memory"])
    assert not torch.equal(adapted["central_memory"], trained["central_memory"])
    assert torch.equal(adapted["text_memory"], trained["text_memory"])
    # the second batch was answered by the adapted memory: alone, after a reset, it reads otherwise
    model.reset()
    assert all(torch.equal(model.memory_state()[k], v) for k, v in trained.items())  # bit for bit
    with torch.no_grad():
        alone = model(images=ns["batch2"])["central_latent"]
    assert not torch.allclose(alone, ns["outputs2"]["central_latent"])
    assert ns["outputs1"]["central_latent"].shape == (BATCH, 512)


def test_configurations(session):
    from neuromem.dense import MultiModalConfig, PRESET_KEYWORDS

    ns = session("Default Configuration")
    assert ns["model"].config == MultiModalConfig()
    assert sum(p.numel() for p in ns["model"].parameters()) == pytest.approx(48.4e6, rel=0.10)
    ns = session("For Smaller Models")
    assert ns["model"].config == MultiModalConfig(**PRESET_KEYWORDS["small"])
    assert sum(p.numel() for p in ns["model"].parameters()) == pytest.approx(12e6, rel=0.10)  # "~12M parameters"


# the largest example: ~224M parameters allocated (~5 s on one core); it stays in the suite
def test_larger_configuration(session):
    ns = session("For Larger Models")
    model = ns["model"]
    assert (model.central_memory.memory.shape, model.text_memory.memory.shape) == ((256, 1024), (128, 1024))
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(200e6, rel=0.15)  # "~200M parameters"
    ns["model"] = None  # free it before the loss examples rebuild the default network


def test_training_losses(session):
    ns = session("Default Configuration")
    ns["model"] = ns["MultiModalMemoryNetwork"]().to(ns["text_tokens"].device)
    for title in ("Contrastive Loss", "Reconstruction Loss", "Cross-Modal Prediction"):
        ns = session(title)
        assert ns["loss"].ndim == 0 and torch.isfinite(ns["loss"])
    assert ns["predicted_image"].shape == ns["target_image"].shape == (4, 512)
    ns["loss"].backward()
    assert ns["model"].text_decoder[1].weight.grad is None  # the image decoder's target only
    assert ns["model"].image_decoder[1].weight.grad is not None


# --- the document's descriptions of the internals, run against the network's components ------------
@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    model = neuromem.dense.MultiModalMemoryNetwork(latent_dim=64, memory_size=16, num_heads=2, num_layers=1,
                                                   vocab_size=100, text_embed_dim=64, image_size=32).eval()  # fmt: skip
    g = torch.Generator().manual_seed(1)
    inputs = dict(text=torch.randint(1, 100, (3, 8), generator=g), images=torch.randn(3, 3, 32, 32, generator=g),
                  audio=torch.randn(3, 1, 32, 32, generator=g))  # fmt: skip
    return model, inputs


def test_fusion_example(small_model):
    model, x = small_model
    model.reset()
    with torch.no_grad():
        out = model(**x)
        latents = out["modality_latents"]
        ns = {"Fusion": model.fusion, "text_encoding": latents["text"], "image_encoding": latents["image"],
              "audio_encoding": latents["audio"]}  # fmt: skip
        exec(FUSION, ns)
        assert ns["fused"].shape == (3, 64)
        # missing modalities: absent ones as None (zeros, masked)
        assert model.fusion([latents["text"], None, None]).shape == (3, 64)
    model.reset()


def test_feedback_loop_example_is_the_networks_own(small_model):
    model, x = small_model
    model.reset()
    with torch.no_grad():
        expected = model(text=x["text"])["central_latent"]
        model.reset()
        text_latent = model.modality_latent("text", model.embed("text", x["text"]))
        fused = model.fusion([text_latent, None, None])
        ns = {"feedback_steps": model.config.feedback_steps, "feedback_network": model.feedback_network,
              "central_memory": model.central_memory, "latent": fused + model.central_memory(fused, write=False)[0]}
        exec(FEEDBACK, ns)
    assert model.config.feedback_steps == 2  # "Default: 2 feedback iterations"
    assert torch.allclose(ns["latent"], expected, atol=1e-6)
    model.reset()


@pytest.mark.parametrize("memory", ["central_memory", "image_memory"])
def test_attention_ttt_formula(small_model, memory):
    """The document's four steps, with the block's own networks, give the slots its test-time write keeps."""
    model, _ = small_model
    model.reset()
    block = getattr(model, memory)
    summary = torch.randn(1, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        query = block.query(summary)
        trained = block.memory.clone()
        weight = read_weights(query, trained, block.parameters_.beta).T  # each slot's attention weight (S, 1)
        ns = {"softmax": lambda x: torch.softmax(x, dim=-1), "input": query, "memory": trained,
              "temperature": block.temperature, "update_network": block.update_network,
              "gate_network": block.gate_network, "memory_slot": trained, "input_summary": query, "weight": weight}
        exec(ATTENTION_TTT, ns)
        block(summary)  # one test-time write (eval mode, no gradients)
    assert torch.allclose(ns["attention_weights"], weight.T)
    assert not torch.equal(block.memory, trained)
    assert torch.allclose(ns["memory_slot"], block.memory, atol=1e-6)
    model.reset()
    assert torch.equal(block.memory, trained)


def test_gradient_ttt_mode_adapts_in_eval():
    torch.manual_seed(0)
    model = neuromem.dense.MultiModalMemoryNetwork(latent_dim=32, memory_size=8, num_heads=2, num_layers=1,
                                                   vocab_size=50, text_embed_dim=32, image_size=16,
                                                   ttt_mode="gradient").eval()  # fmt: skip
    trained = {k: v.clone() for k, v in model.memory_state().items()}
    with torch.no_grad():  # "Computes local gradients for memory": they are taken even under no_grad
        model(audio=torch.randn(2, 1, 16, 16))
    state = model.memory_state()
    assert not torch.equal(state["audio_memory"], trained["audio_memory"])
    model.reset()
    assert all(torch.equal(model.memory_state()[k], v) for k, v in trained.items())
