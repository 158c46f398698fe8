"""`MultiModalMemoryNetwork`: the design document's tri-modal memory network with test-time training.

    text   -> text_encoder  (Transformer)       -> e_text  -> text_memory  (TTT) \\
    images -> image_encoder (ViT)               -> e_image -> image_memory (TTT)  > fusion -> central_memory (TTT)
    audio  -> audio_encoder (CNN, spectrograms) -> e_audio -> audio_memory (TTT) /        -> feedback loop
                                                                                           -> central_latent
    central_latent -> text_decoder / image_decoder / audio_decoder -> predicted (B, latent_dim) embeddings

- a modality memory returns its input plus what it recalls (`x + read(x)`),
  and writes the batch at test time;
- `fusion` is learned: a projection and a type embedding per modality,
  attention pooling over the present ones (absent ones are zeros and masked
  out, so a lone modality is not diluted) and a residual MLP;
- the central latent is `fused + central_memory(fused)`, then `feedback_steps`
  times `latent = latent + feedback_network(latent); latent =
  central_memory.read(latent)`; at test time the batch is written into the
  central memory after that loop (every read of a batch sees only what earlier
  batches wrote).

Every memory is a `TTTMemoryBlock` (`neuromem.memory.ttt`): attention-gated
writes (``ttt_mode="attention"``) or gradient writes (``"gradient"``). Under
``model.eval()`` they write every batch (also inside ``torch.no_grad()``), so
memories change between batches; `reset()` restores the trained slots bit for
bit. Training unrolls the writes over chunks of a batch (see `ttt.py`).

The constructor takes the document's keywords with the document's defaults;
everything else (``MultiModalConfig`` fields after ``feedback_steps``) is
neuromem's and has a default chosen to meet the document's parameter budget
(~48M: text ~15M, image ~20M, audio ~5M, memories ~2M, fusion and decoders
~6M; `count_parameters` reports it per component). A registered memory
module can replace the central TTT memory (``central_memory=build_memory(name,
{m: latent_dim for m in MODALITIES})``): it sees each present modality's
latent as a length-1 sequence, its per-modality representations (projected
back to `latent_dim`) are what `fusion` combines, and the feedback loop then
applies `feedback_network` only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Mapping, Sequence

import torch
from torch import nn

from neuromem.dense.encoders import SpectrogramEncoder, TextEncoder, ViTEncoder
from neuromem.errors import NeuromemError
from neuromem.memory.base import MemoryModule, MemoryOutput
from neuromem.memory.functional.ttt import WRITE_MODES
from neuromem.memory.ttt import TTTMemoryBlock

MODALITIES = ("text", "image", "audio")
KEYWORDS = {"text": "text", "image": "images", "audio": "audio"}  # forward()'s argument for each modality


@dataclass(frozen=True)
class MultiModalConfig:
    # --- the design document's keywords and defaults ---
    vocab_size: int = 10000
    text_embed_dim: int = 512
    text_seq_len: int = 512
    image_size: int = 224
    patch_size: int = 16
    image_channels: int = 3
    audio_channels: int = 1
    latent_dim: int = 512
    memory_size: int = 128
    num_heads: int = 8
    num_layers: int = 4
    dropout: float = 0.1
    ttt_mode: str = "attention"
    feedback_steps: int = 2
    # --- neuromem's options ---
    modality_memory_size: int | None = None  # None: memory_size // 2 (the document: 128 central, 64 per modality)
    # MLP widths of the two Transformers, as multiples of latent_dim: they set the encoders' share of the budget
    text_mlp_ratio: float = 3.0
    image_mlp_ratio: float = 6.0
    # the audio CNN's four conv widths; None: (1/4, 1/2, 1, 3/2) x latent_dim
    audio_widths: tuple[int, ...] | None = None
    # the tri-modal data set's spectrogram (freq, time) pooling; the encoder itself takes any size
    audio_freq: int = 64
    audio_time: int = 64
    fusion_hidden: int | None = None  # None: 2 x latent_dim (also the feedback network's and decoders' hidden width)
    write_hidden: int = 64
    write_rate: float = 0.1
    read_beta: float = 1.0
    grad_steps: int = 1
    grad_lr: float = 0.1
    unroll_chunks: int = 4  # training streams of 4 chunks per batch: read, write, read, ...
    drift_compensation: bool = True  # modality memories subtract how far their slots followed the stream

    def __post_init__(self) -> None:
        if self.ttt_mode not in WRITE_MODES:
            raise ValueError(f"ttt_mode={self.ttt_mode!r} is not valid; valid: {', '.join(WRITE_MODES)}")
        if self.latent_dim % self.num_heads:
            raise ValueError(f"latent_dim={self.latent_dim} must be a multiple of num_heads={self.num_heads}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} must be a multiple of patch_size={self.patch_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")
        for name in ("vocab_size", "text_embed_dim", "text_seq_len", "image_channels", "audio_channels", "latent_dim",
                     "memory_size", "num_heads", "num_layers"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.feedback_steps < 0:
            raise ValueError(f"feedback_steps={self.feedback_steps} must be >= 0")
        if self.audio_widths is not None and len(self.audio_widths) < 1:
            raise ValueError("audio_widths must name at least one conv width")

    @property
    def slots_per_modality(self) -> int:
        return self.modality_memory_size or max(1, self.memory_size // 2)

    @property
    def hidden(self) -> int:
        return self.fusion_hidden or 2 * self.latent_dim

    @property
    def conv_widths(self) -> tuple[int, ...]:
        if self.audio_widths is not None:
            return tuple(self.audio_widths)
        d = self.latent_dim
        return (d // 4, d // 2, d, 3 * d // 2)

    def with_options(self, **overrides) -> "MultiModalConfig":
        unknown = set(overrides) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown network option(s) {', '.join(sorted(unknown))}; valid: {', '.join(asdict(self))}")
        if overrides.get("audio_widths") is not None:
            overrides["audio_widths"] = tuple(overrides["audio_widths"])
        return replace(self, **overrides)


# The document's three configurations, keyword for keyword (everything else at its default).
PRESET_KEYWORDS: dict[str, dict] = {
    "small": dict(latent_dim=256, memory_size=64, num_heads=4, num_layers=2, feedback_steps=1),
    "default": {},
    "large": dict(latent_dim=1024, memory_size=256, num_heads=16, num_layers=6, feedback_steps=3),
}
PRESET_TARGETS = {"small": 12e6, "default": 48e6, "large": 200e6}  # the document's "~12M", "~48.4M", "~200M"
# the document's per-component budget of the default configuration ("Memory Usage")
COMPONENT_BUDGET = {"text_encoder": 15e6, "image_encoder": 20e6, "audio_encoder": 5e6, "memories": 2e6,
                    "fusion_decoders": 6e6}  # fmt: skip
PRESETS: dict[str, MultiModalConfig] = {name: MultiModalConfig(**kw) for name, kw in PRESET_KEYWORDS.items()}


def preset(name: str, **overrides) -> MultiModalConfig:
    if name not in PRESETS:
        raise NeuromemError(f"unknown tri-modal preset {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[name].with_options(**overrides)


def mlp(dim: int, hidden: int, out: int, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out))


class Fusion(nn.Module):
    """Fusion([text, image, audio]) -> (B, dim): any subset, absent ones given as None (or left out of a dict).

    Each present encoding is projected and tagged with its modality's learned
    embedding; absent ones are zeros and masked out of the attention pooling;
    a residual MLP follows.
    """

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, modalities: Sequence[str] = MODALITIES) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.project = nn.ModuleList(nn.Linear(dim, dim) for _ in self.modalities)
        self.type_embedding = nn.Parameter(torch.zeros(len(self.modalities), dim))
        self.score = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 1))
        self.mlp = mlp(dim, hidden, dim, dropout)

    def forward(self, encodings: Sequence[torch.Tensor | None] | Mapping[str, torch.Tensor]) -> torch.Tensor:
        if isinstance(encodings, Mapping):
            unknown = set(encodings) - set(self.modalities)
            if unknown:
                raise ValueError(f"unknown modality {sorted(unknown)}; valid: {', '.join(self.modalities)}")
            encodings = [encodings.get(m) for m in self.modalities]
        if len(encodings) != len(self.modalities):
            raise ValueError(f"fusion takes {len(self.modalities)} encodings ({', '.join(self.modalities)}), None for absent ones")
        present = [x for x in encodings if x is not None]
        if not present:
            raise ValueError("fusion needs at least one modality")
        reference = present[0]
        if any(x.shape != reference.shape for x in present):
            raise ValueError(f"fusion inputs must share one shape; got {[tuple(x.shape) for x in present]}")
        tokens, mask = [], []
        for i, x in enumerate(encodings):
            if x is None:
                tokens.append(torch.zeros_like(reference))
                mask.append(torch.zeros(reference.shape[0], dtype=torch.bool, device=reference.device))
            else:
                tokens.append(self.project[i](x) + self.type_embedding[i])
                mask.append(torch.ones(reference.shape[0], dtype=torch.bool, device=reference.device))
        tokens, mask = torch.stack(tokens, 1), torch.stack(mask, 1)  # (B, M, D), (B, M)
        scores = self.score(tokens).squeeze(-1).masked_fill(~mask, float("-inf"))
        pooled = (torch.softmax(scores, dim=1).unsqueeze(-1) * tokens).sum(1)
        return pooled + self.mlp(pooled)


class MultiModalMemoryNetwork(nn.Module):
    def __init__(
        self,
        *,
        vocab_size: int = 10000,
        text_embed_dim: int = 512,
        text_seq_len: int = 512,
        image_size: int = 224,
        patch_size: int = 16,
        image_channels: int = 3,
        audio_channels: int = 1,
        latent_dim: int = 512,
        memory_size: int = 128,
        num_heads: int = 8,
        num_layers: int = 4,
        dropout: float = 0.1,
        ttt_mode: str = "attention",
        feedback_steps: int = 2,
        central_memory: MemoryModule | None = None,
        **options,
    ) -> None:
        super().__init__()
        documented = dict(
            vocab_size=vocab_size, text_embed_dim=text_embed_dim, text_seq_len=text_seq_len, image_size=image_size,
            patch_size=patch_size, image_channels=image_channels, audio_channels=audio_channels, latent_dim=latent_dim,
            memory_size=memory_size, num_heads=num_heads, num_layers=num_layers, dropout=dropout, ttt_mode=ttt_mode,
            feedback_steps=feedback_steps,
        )  # fmt: skip
        self.config = c = MultiModalConfig().with_options(**documented, **options)
        d = c.latent_dim
        self.text_encoder = TextEncoder(c.vocab_size, c.text_seq_len, c.text_embed_dim, d, c.num_layers, c.num_heads,
                                        c.text_mlp_ratio, c.dropout)  # fmt: skip
        self.image_encoder = ViTEncoder(c.image_size, c.patch_size, c.image_channels, d, c.num_layers, c.num_heads,
                                        c.image_mlp_ratio, c.dropout)  # fmt: skip
        self.audio_encoder = SpectrogramEncoder(c.conv_widths, d, c.audio_channels)
        block = dict(
            mode=c.ttt_mode, write_hidden=c.write_hidden, beta=c.read_beta, write_rate=c.write_rate,
            grad_steps=c.grad_steps, grad_lr=c.grad_lr, unroll_chunks=c.unroll_chunks,
        )  # fmt: skip
        for m in MODALITIES:
            self.add_module(f"{m}_memory", TTTMemoryBlock(c.slots_per_modality, d, drift_compensation=c.drift_compensation, **block))
        self.fusion = Fusion(d, c.hidden, c.dropout)
        if central_memory is None:
            self.central_memory: nn.Module = TTTMemoryBlock(c.memory_size, d, **block)
            self.central_out = None
        else:
            missing = set(MODALITIES) - set(central_memory.modalities)
            if missing:
                raise ValueError(f"central memory lacks modalities {sorted(missing)}; build it with {list(MODALITIES)}")
            self.central_memory = central_memory
            self.central_out = nn.Linear(central_memory.output_size, d)
        self.feedback_network = mlp(d, c.hidden, d, c.dropout)
        for m in MODALITIES:
            self.add_module(f"{m}_decoder", mlp(d, c.hidden, d, c.dropout))

    @classmethod
    def from_config(cls, config: MultiModalConfig | str, central_memory: MemoryModule | None = None,
                    **overrides) -> "MultiModalMemoryNetwork":  # fmt: skip
        """Build from a `MultiModalConfig` or a preset name ("small", "default", "large")."""
        config = preset(config) if isinstance(config, str) else config
        return cls(**asdict(config.with_options(**overrides)), central_memory=central_memory)

    # --- the components by modality -------------------------------------------------------------
    @property
    def encoders(self) -> dict[str, nn.Module]:
        return {m: getattr(self, f"{m}_encoder") for m in MODALITIES}

    @property
    def memories(self) -> dict[str, TTTMemoryBlock]:
        return {m: getattr(self, f"{m}_memory") for m in MODALITIES}

    @property
    def decoders(self) -> dict[str, nn.Module]:
        return {m: getattr(self, f"{m}_decoder") for m in MODALITIES}

    @property
    def has_ttt_central(self) -> bool:
        return self.central_out is None

    # --- pieces ----------------------------------------------------------------------------------
    def embed(self, modality: str, data: torch.Tensor) -> torch.Tensor:
        """The encoder's embedding (B, latent_dim) of one modality's raw input."""
        return self.encoders[_check_modality(modality)](data)

    def modality_latent(self, modality: str, embedding: torch.Tensor) -> torch.Tensor:
        """The embedding plus what its modality's memory recalls (the memory writes at test time)."""
        read, _ = self.memories[modality](embedding)
        return embedding + read

    def fuse(self, latents: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, MemoryOutput | None]:
        """Central latent (B, latent_dim) of any non-empty subset of modality latents, after the feedback loop."""
        if not latents:
            raise ValueError("at least one modality is needed")
        memory_output = None
        if self.has_ttt_central:
            fused = self.fusion(latents)
            # eval: the batch is written after the feedback loop, so its re-reads (like its first read) see only
            # what earlier batches wrote; training: the forward's unrolled writes
            read, _ = self.central_memory(fused, write=self.training)
            latent = fused + read
        else:
            memory_output = self.central_memory({m: z.unsqueeze(0) for m, z in latents.items()})
            latent = self.fusion({m: self.central_out(memory_output.representations[m]) for m in latents})
        for _ in range(self.config.feedback_steps):
            latent = latent + self.feedback_network(latent)
            if self.has_ttt_central:
                latent = self.central_memory.read(latent)
        if self.has_ttt_central:
            self.central_memory.remember(fused)
        return latent, memory_output

    def decode(self, latent: torch.Tensor, modality: str) -> torch.Tensor:
        return self.decoders[_check_modality(modality)](latent)

    # --- the user-facing calls ---------------------------------------------------------------------
    def forward(
        self,
        text: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        decode_to: Sequence[str] = (),
    ) -> dict:
        """"central_latent" (B, latent_dim) of the given modalities, "decoded_<modality>" for each of
        `decode_to`; also "embeddings" and "modality_latents" (per given modality), "decoded" (the
        decoded_* as one dict) and "memory_output" (a registry central memory's output, else None)."""
        if isinstance(decode_to, str):
            decode_to = [decode_to]
        for m in decode_to:
            _check_modality(m)
        inputs = {m: x for m, x in zip(MODALITIES, (text, images, audio)) if x is not None}
        if not inputs:
            raise ValueError("give at least one of text=, images=, audio=")
        embeddings = {m: self.embed(m, x) for m, x in inputs.items()}
        latents = {m: self.modality_latent(m, e) for m, e in embeddings.items()}
        central, memory_output = self.fuse(latents)
        decoded = {m: self.decode(central, m) for m in decode_to}
        return {
            "central_latent": central, **{f"decoded_{m}": v for m, v in decoded.items()}, "decoded": decoded,
            "embeddings": embeddings, "modality_latents": latents, "memory_output": memory_output,
        }  # fmt: skip

    def cross_modal_retrieval(self, query_modality: str, query_data: torch.Tensor, target_modality: str) -> torch.Tensor:
        """The target modality's embedding (B, latent_dim) predicted from the query alone: rank a gallery of
        target items by cosine similarity to their `embed` outputs."""
        out = self.forward(**{KEYWORDS[_check_modality(query_modality)]: query_data}, decode_to=[target_modality])
        return out[f"decoded_{target_modality}"]

    def complete(self, modality: str, data: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predicted embeddings of the two missing modalities from one."""
        out = self.forward(**{KEYWORDS[_check_modality(modality)]: data}, decode_to=[m for m in MODALITIES if m != modality])
        return out["decoded"]

    # --- memory state --------------------------------------------------------------------------------
    def memory_blocks(self) -> dict[str, TTTMemoryBlock]:
        blocks = {f"{m}_memory": b for m, b in self.memories.items()}
        if self.has_ttt_central:
            blocks["central_memory"] = self.central_memory
        return blocks

    def memory_state(self) -> dict[str, torch.Tensor]:
        """Copies of every memory's current slots, by block name (the central registry module's too, if it has any)."""
        state = {name: block.memory_state() for name, block in self.memory_blocks().items()}
        if not self.has_ttt_central and hasattr(self.central_memory, "memory_state"):
            state.update({f"central_memory.{k}": v for k, v in self.central_memory.memory_state().items()})
        return state

    def load_memory_state(self, state: Mapping[str, torch.Tensor]) -> None:
        for name, block in self.memory_blocks().items():
            block.load_memory_state(state[name])
        if not self.has_ttt_central and hasattr(self.central_memory, "load_memory_state"):
            prefix = "central_memory."
            self.central_memory.load_memory_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})

    def reset(self) -> None:
        """Forget all test-time writes (exact restore of the trained memories)."""
        for block in self.memory_blocks().values():
            block.reset()
        if not self.has_ttt_central:
            self.central_memory.reset_memory()

    def describe(self) -> dict[str, object]:
        """Which network this is, for results: central memory, its shape, the TTT mode."""
        c = self.config
        if self.has_ttt_central:
            central = f"ttt {c.memory_size}x{c.latent_dim}"
        else:
            central = f"{getattr(self.central_memory, 'name', type(self.central_memory).__name__)} (registry module)"
        return {
            "network": type(self).__name__, "central_memory": central, "ttt_mode": c.ttt_mode,
            "modality_memories": f"ttt 3 x {c.slots_per_modality}x{c.latent_dim}", "latent_dim": c.latent_dim,
        }  # fmt: skip


def _check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; valid: {', '.join(MODALITIES)}")
    return modality


def component_of(name: str) -> str:
    """The document's budget line a parameter (by its name in the network) belongs to."""
    head = name.split(".")[0]
    if head in ("text_encoder", "image_encoder", "audio_encoder"):
        return head
    if head.endswith("_memory") or head == "central_out":
        return "memories"
    return "fusion_decoders"  # fusion, feedback network, decoders


def count_parameters(config: MultiModalConfig | str = "default", central_memory: MemoryModule | None = None,
                     by_component: bool = False) -> int | dict[str, int]:  # fmt: skip
    """Parameters of a network built on the meta device (nothing is allocated, so the large preset is cheap);
    with `by_component`, per budget line of the document plus "total"."""
    with torch.device("meta"):
        network = MultiModalMemoryNetwork.from_config(config, central_memory=central_memory)
    counts = dict.fromkeys((*COMPONENT_BUDGET, "total"), 0)
    for name, p in network.named_parameters():
        counts[component_of(name)] += p.numel()
        counts["total"] += p.numel()
    return counts if by_component else counts["total"]
