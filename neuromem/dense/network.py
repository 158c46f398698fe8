"""`MultiModalMemoryNetwork`: text, image and audio encoders into test-time-training memories.

    text  -> TextEncoder        -> e_text  -> TTT memory (text)  -> l_text  \\
    image -> ViTEncoder         -> e_image -> TTT memory (image) -> l_image  > fuse (mean of the present) -> central
    audio -> SpectrogramEncoder -> e_audio -> TTT memory (audio) -> l_audio /

    central: z <- fused + read(central TTT memory); then `feedback_steps` times
             z <- z + f(z); z <- z + read(central)         (re-reads do not write)
    decoders: z -> predicted embedding of each modality (completion / cross-modal prediction)

Every memory is a `TTTMemoryBlock` from `neuromem.memory.ttt`: attention writes
by default, gradient writes with ``memory_mode="gradient"``; memories change
between eval batches under ``no_grad`` and `reset()` restores the trained
slots exactly. The modality memories use drift compensation by default: their
slots live in the embedding space, follow the test stream through the gated
writes, and the read subtracts how far they moved — so a stream whose
embeddings are shifted (noisier audio) is pulled back toward the trained
distribution (`tests/test_dense_trimodal.py` measures the gain). Any registered memory module can replace the central TTT
memory (``central_memory=build_memory(name, {m: dim for m in MODALITIES})``):
it then receives each present modality's latent as a length-1 sequence
(1, B, dim), and its per-modality representations, projected back to `dim`
and averaged, are the fused latent (the feedback loop then applies f only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Mapping, Sequence

import torch
from torch import nn

from neuromem.dense.encoders import SpectrogramEncoder, TextEncoder, ViTEncoder
from neuromem.errors import NeuromemError
from neuromem.memory.base import MemoryModule, MemoryOutput
from neuromem.memory.ttt import TTTMemoryBlock

MODALITIES = ("text", "image", "audio")


@dataclass(frozen=True)
class MultiModalConfig:
    dim: int = 512
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    # text
    vocab_size: int = 40
    max_text_length: int = 32
    text_layers: int = 4
    text_heads: int = 8
    # images
    image_size: int = 224
    patch_size: int = 16
    image_channels: int = 3
    image_layers: int = 4
    image_heads: int = 8
    # audio spectrograms (1, audio_freq, audio_time)
    audio_channels: tuple[int, ...] = (64, 128, 256, 512)
    audio_freq: int = 64
    audio_time: int = 64
    # memories
    modality_slots: int = 64
    central_slots: int = 128
    memory_mode: str = "attention"
    write_hidden: int = 64
    write_rate: float = 0.1
    read_beta: float = 1.0
    grad_steps: int = 1
    grad_lr: float = 0.1
    unroll_chunks: int = 4  # training streams of 4 chunks per batch: read, write, read, ...
    drift_compensation: bool = True  # modality memories subtract how far their slots followed the stream
    feedback_steps: int = 2
    feedback_hidden: int = 2048
    decoder_hidden: int = 1792
    decoder_layers: int = 3

    def with_options(self, **overrides) -> "MultiModalConfig":
        unknown = set(overrides) - set(asdict(self))
        if unknown:
            raise ValueError(f"unknown network option(s) {', '.join(sorted(unknown))}; valid: {', '.join(asdict(self))}")
        if "audio_channels" in overrides:
            overrides["audio_channels"] = tuple(overrides["audio_channels"])
        return replace(self, **overrides)


# Sizes the issue asks for; `tests/test_dense_network.py` checks each preset is within 10%.
PRESET_TARGETS = {"small": 12e6, "default": 48e6, "large": 200e6}
PRESETS: dict[str, MultiModalConfig] = {
    "small": MultiModalConfig(
        dim=256, text_layers=4, text_heads=4, max_text_length=24, image_size=32, patch_size=8, image_channels=1,
        image_layers=4, image_heads=4, audio_channels=(32, 64, 128, 256), audio_freq=32, audio_time=32,
        modality_slots=32, central_slots=64, feedback_hidden=1024, decoder_hidden=896,
    ),
    "default": MultiModalConfig(),
    "large": MultiModalConfig(
        dim=1024, text_layers=6, text_heads=16, image_layers=6, image_heads=16, audio_channels=(64, 128, 256, 512),
        modality_slots=128, central_slots=256, feedback_hidden=4096, decoder_hidden=4096, decoder_layers=2,
    ),
}  # fmt: skip


def preset(name: str, **overrides) -> MultiModalConfig:
    if name not in PRESETS:
        raise NeuromemError(f"unknown tri-modal preset {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[name].with_options(**overrides)


def mlp(dim: int, hidden: int, out: int, layers: int = 2) -> nn.Sequential:
    parts: list[nn.Module] = [nn.LayerNorm(dim)]
    width = dim
    for _ in range(layers - 1):
        parts += [nn.Linear(width, hidden), nn.GELU()]
        width = hidden
    parts.append(nn.Linear(width, out))
    return nn.Sequential(*parts)


class MultiModalMemoryNetwork(nn.Module):
    def __init__(
        self, config: MultiModalConfig | str = "default", central_memory: MemoryModule | None = None, **overrides
    ) -> None:
        super().__init__()
        config = preset(config) if isinstance(config, str) else config
        self.config = c = config.with_options(**overrides)
        self.encoders = nn.ModuleDict({
            "text": TextEncoder(c.vocab_size, c.max_text_length, c.dim, c.text_layers, c.text_heads, c.mlp_ratio, c.dropout),
            "image": ViTEncoder(c.image_size, c.patch_size, c.image_channels, c.dim, c.image_layers, c.image_heads,
                                c.mlp_ratio, c.dropout),
            "audio": SpectrogramEncoder(c.audio_channels, c.dim),
        })  # fmt: skip
        block = dict(
            mode=c.memory_mode, write_hidden=c.write_hidden, beta=c.read_beta, write_rate=c.write_rate,
            grad_steps=c.grad_steps, grad_lr=c.grad_lr, unroll_chunks=c.unroll_chunks,
        )  # fmt: skip
        self.memories = nn.ModuleDict(
            {m: TTTMemoryBlock(c.modality_slots, c.dim, drift_compensation=c.drift_compensation, **block) for m in MODALITIES}
        )
        self.central_memory = central_memory
        if central_memory is None:
            self.central = TTTMemoryBlock(c.central_slots, c.dim, **block)
        else:
            missing = set(MODALITIES) - set(central_memory.modalities)
            if missing:
                raise ValueError(f"central memory lacks modalities {sorted(missing)}; build it with {list(MODALITIES)}")
            self.central_out = nn.Linear(central_memory.output_size, c.dim)
        self.feedback = mlp(c.dim, c.feedback_hidden, c.dim)
        self.decoders = nn.ModuleDict({m: mlp(c.dim, c.decoder_hidden, c.dim, c.decoder_layers) for m in MODALITIES})

    # --- pieces ----------------------------------------------------------------------------
    def embed(self, modality: str, data: torch.Tensor) -> torch.Tensor:
        """The encoder's embedding (B, dim) of one modality's raw input."""
        if modality not in self.encoders:
            raise ValueError(f"unknown modality {modality!r}; valid: {', '.join(MODALITIES)}")
        return self.encoders[modality](data)

    def modality_latent(self, modality: str, embedding: torch.Tensor) -> torch.Tensor:
        read, _ = self.memories[modality](embedding)
        return embedding + read

    def fuse(self, latents: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, MemoryOutput | None]:
        """Central latent (B, dim) of any non-empty subset of modality latents, after the feedback loop."""
        if not latents:
            raise ValueError("at least one modality is needed")
        if self.central_memory is None:
            fused = torch.stack(list(latents.values())).mean(0)
            read, _ = self.central(fused)
            latent, memory_output = fused + read, None
        else:
            memory_output = self.central_memory({m: z.unsqueeze(0) for m, z in latents.items()})
            reps = [self.central_out(memory_output.representations[m]) for m in latents]
            latent = torch.stack(reps).mean(0)
        for _ in range(self.config.feedback_steps):
            latent = latent + self.feedback(latent)
            if self.central_memory is None:
                read, _ = self.central(latent, write=False)
                latent = latent + read
        return latent, memory_output

    def decode(self, latent: torch.Tensor, modality: str) -> torch.Tensor:
        return self.decoders[modality](latent)

    # --- the user-facing calls ---------------------------------------------------------------
    def forward(
        self,
        text: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        decode_to: Sequence[str] = (),
    ) -> dict:
        """Named outputs: "embeddings" and "modality_latents" per given modality, "central_latent"
        (B, dim) of their fusion, "decoded" (modality -> predicted embedding) for `decode_to`, and
        "memory_output" (the registry memory's output, if one replaces the central TTT memory)."""
        inputs = {m: x for m, x in zip(MODALITIES, (text, images, audio)) if x is not None}
        embeddings = {m: self.embed(m, x) for m, x in inputs.items()}
        latents = {m: self.modality_latent(m, e) for m, e in embeddings.items()}
        central, memory_output = self.fuse(latents)
        decoded = {m: self.decode(central, m) for m in decode_to}
        return {
            "embeddings": embeddings, "modality_latents": latents, "central_latent": central, "decoded": decoded,
            "memory_output": memory_output,
        }  # fmt: skip

    def cross_modal_retrieval(self, query_modality: str, query_data: torch.Tensor, target_modality: str) -> torch.Tensor:
        """The target modality's embedding predicted from the query alone (B, dim): rank a gallery of
        target-modality items by cosine similarity to their `embed` outputs (that is also completion)."""
        latent, _ = self.fuse({query_modality: self.modality_latent(query_modality, self.embed(query_modality, query_data))})
        return self.decode(latent, target_modality)

    def complete(self, modality: str, data: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predicted embeddings of the two missing modalities from one."""
        out = self.forward(**{_keyword(modality): data}, decode_to=[m for m in MODALITIES if m != modality])
        return out["decoded"]

    # --- memory state ------------------------------------------------------------------------
    def memory_blocks(self) -> dict[str, TTTMemoryBlock]:
        blocks = {f"memory.{m}": b for m, b in self.memories.items()}
        if self.central_memory is None:
            blocks["central"] = self.central
        return blocks

    def memory_state(self) -> dict[str, torch.Tensor]:
        """Copies of every memory's current slots, by block name (the central registry module's too, if it has any)."""
        state = {name: block.memory_state() for name, block in self.memory_blocks().items()}
        if self.central_memory is not None and hasattr(self.central_memory, "memory_state"):
            state.update({f"central.{k}": v for k, v in self.central_memory.memory_state().items()})
        return state

    def load_memory_state(self, state: Mapping[str, torch.Tensor]) -> None:
        for name, block in self.memory_blocks().items():
            block.load_memory_state(state[name])
        if self.central_memory is not None and hasattr(self.central_memory, "load_memory_state"):
            prefix = "central."
            self.central_memory.load_memory_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})

    def reset(self) -> None:
        """Forget all test-time writes (exact restore of the trained memories)."""
        for block in self.memory_blocks().values():
            block.reset()
        if self.central_memory is not None:
            self.central_memory.reset_memory()


def _keyword(modality: str) -> str:
    return {"text": "text", "image": "images", "audio": "audio"}[modality]


def count_parameters(config: MultiModalConfig | str, central_memory: MemoryModule | None = None) -> int:
    """Parameters of a network built on the meta device (no memory is allocated, so the large preset is cheap)."""
    with torch.device("meta"):
        network = MultiModalMemoryNetwork(config, central_memory=central_memory)
    return sum(p.numel() for p in network.parameters())
