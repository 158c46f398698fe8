"""Training and evaluation of the tri-modal memory network, and the ablation cell.

Recipe (`TriModalRecipe`): per batch of digit-paired (text, image, audio)
samples, each modality is encoded, written/read through its TTT memory and
fused *alone* through the central memory (z_text, z_image, z_audio), and the
three together (z_all). The loss is

    align  * mean_{a<b} InfoNCE(z_a, z_b)                 (contrastive alignment)
  + predict* mean_{a!=b} InfoNCE(decode_b(z_a), e_b)       (cross-modal prediction)
  + recon  * mean_m [1 - cos(decode_m(z_m), e_m)] + [1 - cos(decode_m(z_all), e_m)]   (reconstruction)
  + classify * mean over z_m, z_all of CE(digit head)      (gives test_accuracy)
  + the central memory's own auxiliary loss (registry modules such as cmhan)

with same-digit pairs as InfoNCE positives. `schedule="phased"` is the design
document's training strategy, four phases over equal shares of the epochs,
each unfreezing more of the network:

  1. "encoders": encoders, decoders (and the digit head); memories frozen and
     not written; each modality alone (no fused forward);
  2. "fusion": + the fusion module and the modality memories; paired batches;
  3. "central": + the central memory and the feedback network;
  4. "ttt": + the TTT meta-parameters (the write networks), with the unrolled
     test-time writes on during training.

`schedule="joint"` trains everything at once with the unrolled writes on. In
the TTT phase (and, with `audio_noise_prob`, throughout) whole batches get a
random level of background noise on the audio, so the unrolled writes learn to
adapt a memory to a shifted stream.

Retrieval (`evaluate_retrieval`): for each of the six directions, the query
modality alone predicts the target modality's embedding
(`cross_modal_retrieval`), and the test set's target embeddings are ranked by
cosine similarity (relevant = same digit). Memories start from the trained
slots for every direction and, when `adapt` is on, write batch after batch
as the queries stream through (read-then-write).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from dataclasses import dataclass, replace
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuromem.dense.data import NUM_DIGITS, TriModalDigits, load_trimodal
from neuromem.dense.losses import info_nce, reconstruction_loss
from neuromem.dense.network import KEYWORDS, MODALITIES, MultiModalConfig, MultiModalMemoryNetwork
from neuromem.dense.network import preset as network_preset
from neuromem.errors import NeuromemError
from neuromem.memory.base import build_memory
from neuromem.memory.ttt import TTTMemoryBlock
from neuromem.metrics.retrieval import retrieval_metrics

PHASES = ("encoders", "fusion", "central", "ttt")
PRESET_NAMES = ("small", "default", "large")
SCHEDULES = ("joint", "phased", "zero-shot")
# the zero-shot protocol (the design document's "zero-shot cross-modal transfer"): trained on text-image and
# text-audio pairs only, never on image and audio together; image <-> audio retrieval is then zero-shot
HELD_OUT = {"zero-shot": ("image", "audio")}


def trained_pairs(schedule: str) -> list[tuple[str, str]]:
    """The modality pairs a schedule aligns (every pair but the one it holds out)."""
    held = set(HELD_OUT.get(schedule, ()))
    return [pair for pair in itertools.combinations(MODALITIES, 2) if set(pair) != held]


@dataclass(frozen=True)
class TriModalRecipe:
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    temperature: float = 0.1
    align: float = 1.0
    predict: float = 1.0
    recon: float = 0.5
    classify: float = 1.0
    schedule: str = "joint"
    audio_noise_max: float = 0.02  # background events per original bin, upper end of the training shifts
    audio_noise_prob: float = 0.0  # chance a batch is shifted outside the TTT phase
    grad_clip: float = 1.0
    eval_audio_noise: float = 0.01  # the shifted test stream of the TTT-in-action metrics (0 = skip them)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} is not valid; valid: {', '.join(SCHEDULES)}")
        for name in ("batch_size",):
            if getattr(self, name) < 2:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 2")
        if not 0.0 <= self.audio_noise_prob <= 1.0:
            raise ValueError(f"audio_noise_prob={self.audio_noise_prob} must be in [0, 1]")


class TriModalModel(nn.Module):
    """The network plus the digit head the recipe trains (for `test_accuracy`)."""

    def __init__(self, network: MultiModalMemoryNetwork) -> None:
        super().__init__()
        self.network = network
        self.head = nn.Linear(network.config.latent_dim, NUM_DIGITS)


WRITE_PARTS = ("value_net", "gate_net", "decoder")  # a TTT block's write networks (gradient mode: its decoder)


def is_write_parameter(name: str) -> bool:
    head, _, rest = name.partition(".")
    return head.endswith("_memory") and any(f".{w}." in f".{rest}" for w in WRITE_PARTS)


def phase_groups(model: TriModalModel) -> dict[str, list[nn.Parameter]]:
    """The parameters each phase unfreezes (disjoint; phase k trains groups 1..k)."""
    groups: dict[str, list[nn.Parameter]] = {phase: [] for phase in PHASES}
    for name, p in model.network.named_parameters():
        head = name.split(".")[0]
        if is_write_parameter(name):
            groups["ttt"].append(p)
        elif head.endswith(("_encoder", "_decoder")):
            groups["encoders"].append(p)
        elif head in ("fusion", "text_memory", "image_memory", "audio_memory"):
            groups["fusion"].append(p)
        else:  # central_memory, central_out, feedback_network
            groups["central"].append(p)
    groups["encoders"] += list(model.head.parameters())
    return groups


def phase_parameters(model: TriModalModel, phase: str) -> list[nn.Parameter]:
    """The parameters a phase of the phased schedule trains: its own group and every earlier one."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; valid: {', '.join(PHASES)}")
    groups = phase_groups(model)
    return [p for earlier in PHASES[: PHASES.index(phase) + 1] for p in groups[earlier]]


def ttt_blocks(module: nn.Module) -> list[TTTMemoryBlock]:
    return [m for m in module.modules() if isinstance(m, TTTMemoryBlock)]


@contextlib.contextmanager
def _block_flag(module: nn.Module, flag: str, enabled: bool) -> Iterator[None]:
    blocks = ttt_blocks(module)
    before = [getattr(b, flag) for b in blocks]
    for b in blocks:
        setattr(b, flag, enabled)
    try:
        yield
    finally:
        for b, value in zip(blocks, before):
            setattr(b, flag, value)


def memory_writes(module: nn.Module, enabled: bool):
    """Turn test-time writes of every TTT block inside `module` on or off for a while."""
    return _block_flag(module, "test_time_writes", enabled)


def unrolled_writes(module: nn.Module, enabled: bool):
    """Turn the training-time (unrolled, differentiable) writes of every TTT block on or off for a while."""
    return _block_flag(module, "unrolled_writes", enabled)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def batch_loss(model: TriModalModel, batch: dict[str, torch.Tensor], recipe: TriModalRecipe,
               together: bool = True) -> tuple[torch.Tensor, float]:  # fmt: skip
    """The recipe's loss on one paired batch, and the digit accuracy of the fused latent (of the
    last single modality without `together`: then no term sees the three modalities fused)."""
    net, digits = model.network, batch["digits"]
    if together:
        out = net(text=batch["text"], images=batch["images"], audio=batch["audio"], decode_to=MODALITIES)
        embeddings, latents = out["embeddings"], out["modality_latents"]
    else:
        embeddings = {m: net.embed(m, batch[KEYWORDS[m]]) for m in MODALITIES}
        latents = {m: net.modality_latent(m, e) for m, e in embeddings.items()}
    singles, aux = {}, []
    for m in MODALITIES:
        singles[m], memory_output = net.fuse({m: latents[m]})
        if memory_output is not None:
            aux.append(net.central_memory.auxiliary_loss(memory_output, digits))
    if together and out["memory_output"] is not None:
        aux.append(net.central_memory.auxiliary_loss(out["memory_output"], digits))
    pairs = trained_pairs(recipe.schedule)
    align = sum(info_nce(singles[a], singles[b], digits, recipe.temperature) for a, b in pairs) / len(pairs)
    directed = [d for a, b in pairs for d in ((a, b), (b, a))]
    predict = sum(
        info_nce(net.decode(singles[a], b), embeddings[b], digits, recipe.temperature) for a, b in directed
    ) / len(directed)
    recon = sum(
        reconstruction_loss(net.decode(singles[m], m), embeddings[m])
        + (reconstruction_loss(out["decoded"][m], embeddings[m]) if together else 0.0)
        for m in MODALITIES
    ) / len(MODALITIES)
    logits = [model.head(z) for z in (*singles.values(), *([out["central_latent"]] if together else []))]
    classify = sum(F.cross_entropy(l, digits) for l in logits) / len(logits)
    loss = recipe.align * align + recipe.predict * predict + recipe.recon * recon + recipe.classify * classify
    if aux:
        loss = loss + sum(aux) / len(aux)
    accuracy = (logits[-1].argmax(1) == digits).float().mean().item()
    return loss, accuracy


def train_trimodal(
    model: TriModalModel,
    train_set: TriModalDigits,
    recipe: TriModalRecipe,
    epochs: int,
    seed: int,
    progress=None,
    phases: tuple[str, ...] | None = None,
) -> list[float]:
    """Train in place; returns the mean loss of every epoch. Deterministic given `seed`."""
    config = model.network.config
    generator = torch.Generator().manual_seed(seed)
    if phases is None:
        phases = PHASES if recipe.schedule == "phased" else ("all",)
    per_phase = [epochs // len(phases) + (1 if i < epochs % len(phases) else 0) for i in range(len(phases))]
    if recipe.schedule == "phased" and epochs < len(phases):
        per_phase = [1] * len(phases)  # every phase gets at least one epoch
    history: list[float] = []
    steps = max(1, len(train_set) // recipe.batch_size)
    device = next(model.parameters()).device
    with unrolled_writes(model, True):  # restored afterwards, whatever happens
        for phase, phase_epochs in zip(phases, per_phase):
            params = list(model.parameters()) if phase == "all" else phase_parameters(model, phase)
            for block in ttt_blocks(model):  # the document: TTT is enabled during training in the last phase only
                block.unrolled_writes = phase in ("all", "ttt")
            trainable = {id(p) for p in params}
            for p in model.parameters():
                p.requires_grad_(id(p) in trainable)
            optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
            total = phase_epochs * steps
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
            for epoch in range(phase_epochs):
                model.train()
                if phase == "ttt":
                    # shifted TTT-phase batches must not move the encoders' batch-norm statistics
                    for encoder in model.network.encoders.values():
                        encoder.eval()
                if progress is not None:
                    progress.phase(f"trimodal {phase} epoch {epoch + 1}/{phase_epochs}", steps)
                order = torch.randperm(len(train_set), generator=generator).numpy()
                losses = []
                for step in range(steps):
                    rows = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
                    shifted = phase == "ttt" or torch.rand((), generator=generator).item() < recipe.audio_noise_prob
                    noise = recipe.audio_noise_max * torch.rand((), generator=generator).item() if shifted else 0.0
                    batch = to_device(train_set.batch(rows, config.image_size, config.image_channels, noise, generator), device)
                    # the zero-shot protocol never fuses the held-out pair together: each sense alone
                    together = phase != "encoders" and recipe.schedule not in HELD_OUT
                    loss, accuracy = batch_loss(model, batch, recipe, together=together)
                    optimizer.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(params, recipe.grad_clip)
                    optimizer.step()
                    schedule.step()
                    losses.append(loss.item())
                    if progress is not None:
                        progress.advance(loss.item(), accuracy)
                history.append(float(np.mean(losses)))
    for p in model.parameters():
        p.requires_grad_(True)
    return history


@torch.no_grad()
def embed_all(model: TriModalModel, data: TriModalDigits, modality: str, batch_size: int, audio_noise: float = 0.0,
              seed: int = 0) -> torch.Tensor:  # fmt: skip
    """Encoder embeddings (N, dim) of one modality for the whole set, on the model's device (memories untouched).
    The audio noise is drawn from `seed`, batch after batch, so it is the same stream every time."""
    net, config = model.network, model.network.config
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    chunks = []
    for start in range(0, len(data), batch_size):
        batch = data.batch(np.arange(start, min(start + batch_size, len(data))), config.image_size,
                           config.image_channels, audio_noise if modality == "audio" else 0.0, generator)  # fmt: skip
        chunks.append(net.embed(modality, batch[KEYWORDS[modality]].to(device)))
    return torch.cat(chunks)


@torch.no_grad()
def evaluate_retrieval(
    model: TriModalModel,
    data: TriModalDigits,
    batch_size: int = 128,
    adapt: bool = True,
    audio_noise: float = 0.0,
    seed: int = 0,
    directions: list[tuple[str, str]] | None = None,
    embeddings: dict[str, torch.Tensor] | None = None,
) -> dict[str, float]:
    """Cross-modal retrieval and completion metrics, flat: `retrieval_<src>_to_<dst>_<metric>` and
    `completion_<src>_to_<dst>_cosine`, plus digit accuracy of each modality alone and fused.

    Each modality is encoded once (`embeddings`, computed here unless given for this `audio_noise`); the
    queries then stream through memories, fusion and decoder batch by batch, exactly as
    `cross_modal_retrieval` would, and are ranked against the target modality's embeddings."""
    model.eval()
    net = model.network
    digits = torch.from_numpy(data.digits)
    embeddings = embeddings or {m: embed_all(model, data, m, batch_size, audio_noise, seed) for m in MODALITIES}
    batches = [slice(start, min(start + batch_size, len(data))) for start in range(0, len(data), batch_size)]
    metrics: dict[str, float] = {}
    directions = directions or list(itertools.permutations(MODALITIES, 2))
    with memory_writes(net, adapt):
        for source, target in directions:
            net.reset()
            predicted = []
            for rows in batches:
                latent, _ = net.fuse({source: net.modality_latent(source, embeddings[source][rows])})
                predicted.append(net.decode(latent, target))
            predicted, gallery = torch.cat(predicted).cpu(), embeddings[target].cpu()
            scores = retrieval_metrics(predicted, gallery, digits, digits)
            metrics.update({f"retrieval_{source}_to_{target}_{k}": v for k, v in scores.items()})
            metrics[f"completion_{source}_to_{target}_cosine"] = F.cosine_similarity(predicted, gallery).mean().item()
        net.reset()
        correct = {m: 0 for m in (*MODALITIES, "fused")}
        for rows in batches:
            truth = digits[rows].to(embeddings["text"].device)
            latents = {m: net.modality_latent(m, embeddings[m][rows]) for m in MODALITIES}
            fused, _ = net.fuse(latents)
            correct["fused"] += (model.head(fused).argmax(1) == truth).sum().item()
            for m, latent in latents.items():
                z, _ = net.fuse({m: latent})
                correct[m] += (model.head(z).argmax(1) == truth).sum().item()
        net.reset()
    metrics["test_accuracy"] = correct["fused"] / len(data)
    metrics.update({f"test_accuracy_{m}": correct[m] / len(data) for m in MODALITIES})
    return metrics


# `--memory ttt --memory-option key=value` on the tri-modal path: the registry TTT module's option names,
# mapped onto the network's own memories
TTT_OPTIONS = {
    "mode": "ttt_mode", "num_slots": "modality_memory_size", "central_slots": "memory_size",
    "feedback_steps": "feedback_steps", "write_hidden": "write_hidden", "beta": "read_beta",
    "write_rate": "write_rate", "grad_steps": "grad_steps", "grad_lr": "grad_lr", "unroll_chunks": "unroll_chunks",
    "drift_compensation": "drift_compensation",
}  # fmt: skip
OWN_MEMORY = "ttt"  # this memory name trains the network with its own TTT memories


def network_config(memory: str, preset_name: str, memory_options: dict[str, Any],
                   network_options: dict[str, Any] | None = None) -> MultiModalConfig:  # fmt: skip
    """The network's configuration: a preset, neuromem options, and (memory "ttt") the TTT memory options."""
    if preset_name not in PRESET_NAMES:
        raise NeuromemError(f"--preset {preset_name!r} is not known; valid: {', '.join(PRESET_NAMES)}")
    overrides = dict(network_options or {})
    if memory == OWN_MEMORY:
        unknown = set(memory_options) - set(TTT_OPTIONS)
        if unknown:
            raise NeuromemError(f"--memory-option {', '.join(sorted(unknown))} does not apply to the tri-modal network's "
                                f"own TTT memories; valid: {', '.join(TTT_OPTIONS)}")  # fmt: skip
        overrides.update({TTT_OPTIONS[k]: v for k, v in memory_options.items()})
    try:
        return network_preset(preset_name, **overrides)
    except ValueError as error:
        raise NeuromemError(f"tri-modal network: {error}") from None


def build_model(memory: str, preset_name: str, seed: int, memory_options: dict[str, Any],
                network_options: dict[str, Any] | None = None) -> TriModalModel:  # fmt: skip
    """The documented network with its own central and per-modality TTT memories (memory "ttt"), or
    with the registry module `memory` as its central memory."""
    torch.manual_seed(seed)
    config = network_config(memory, preset_name, memory_options, network_options)
    central = None
    if memory != OWN_MEMORY:
        central = build_memory(memory, {m: config.latent_dim for m in MODALITIES}, **memory_options)
    return TriModalModel(MultiModalMemoryNetwork.from_config(config, central_memory=central))


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_preset() -> str:
    """The document's default configuration where a GPU is present, the small one on CPU."""
    return "default" if torch.cuda.is_available() else "small"


def run_trimodal_cell(
    memory: str,
    seed: int,
    epochs: int,
    data_root: str | os.PathLike,
    preset: str = "small",
    schedule: str = "joint",
    progress=None,
    recipe: TriModalRecipe | None = None,
    network_options: dict[str, Any] | None = None,
    train_limit: int | None = None,
    device: str | None = None,
    state_out: dict[str, Any] | None = None,
    **memory_options,
) -> dict[str, Any]:
    """One ablation cell on the tri-modal digits: train `epochs`, return flat metrics.

    Memory "ttt": `MultiModalMemoryNetwork` with its own TTT memories (`memory_options` use the registry
    TTT module's names: mode, num_slots, central_slots, ...). Any other registered memory replaces the
    central memory: `build_memory(memory, {"text": d, "image": d, "audio": d}, **memory_options)`, seeing
    each modality's latent as a length-1 sequence (1, B, d). Same seed -> same numbers (on one device).
    """
    recipe = recipe or TriModalRecipe()
    if schedule != recipe.schedule:
        recipe = replace(recipe, schedule=schedule)
    config = network_config(memory, preset, dict(memory_options), network_options)
    train_set = load_trimodal(data_root, "train", config.audio_freq, config.audio_time, config.text_seq_len, seed)
    test_set = load_trimodal(data_root, "test", config.audio_freq, config.audio_time, config.text_seq_len, seed)
    if train_limit is not None and train_limit < len(train_set):
        # a seeded random subset: the SHD files are ordered by class, so a prefix would miss digits
        train_set = subset(train_set, np.sort(np.random.default_rng(seed).permutation(len(train_set))[:train_limit]))
    return train_and_evaluate(memory, seed, epochs, train_set, test_set, preset, progress, recipe, network_options,
                              memory_options, device, state_out)  # fmt: skip


def trimodal_cell(**arguments) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ablation cell (`run_trimodal_cell`'s arguments): its metrics and its trained weights
    ({"trimodal": state dict on the CPU}), which `neuromem evaluate` rebuilds the network from."""
    state: dict[str, Any] = {}
    metrics = run_trimodal_cell(**arguments, state_out=state)
    return metrics, state


def train_and_evaluate(memory, seed, epochs, train_set, test_set, preset_name="small", progress=None, recipe=None,
                       network_options=None, memory_options=None, device=None, state_out=None) -> dict[str, Any]:  # fmt: skip
    """The cell's body on in-memory data sets (`run_trimodal_cell` loads them from disk); `state_out` (a dict)
    receives the trained weights under "trimodal"."""
    recipe = recipe or TriModalRecipe()
    device = device or default_device()
    model = build_model(memory, preset_name, seed, dict(memory_options or {}), network_options).to(device)
    history = train_trimodal(model, train_set, recipe, epochs, seed, progress)
    model.eval()
    clean = {m: embed_all(model, test_set, m, 128, 0.0, seed) for m in MODALITIES}
    metrics: dict[str, Any] = evaluate_retrieval(model, test_set, seed=seed, embeddings=clean)
    if recipe.eval_audio_noise > 0:
        metrics.update(shifted_audio_metrics(model, test_set, recipe.eval_audio_noise, seed, clean))
    if state_out is not None:
        state_out["trimodal"] = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    if recipe.schedule in HELD_OUT:
        metrics["held_out_pair"] = "-".join(HELD_OUT[recipe.schedule])
    metrics.update(
        model.network.describe(), preset=preset_name, schedule=recipe.schedule, device=str(device),
        final_train_loss=history[-1] if history else math.nan, parameters=sum(p.numel() for p in model.parameters()),
        train_samples=len(train_set), test_samples=len(test_set), epochs=epochs,
    )  # fmt: skip
    return metrics


def shifted_audio_metrics(model: TriModalModel, data: TriModalDigits, noise: float, seed: int,
                          clean: dict[str, torch.Tensor] | None = None) -> dict[str, float]:  # fmt: skip
    """TTT in action: audio -> image / text retrieval on a noisier audio stream, memories frozen vs adapting.

    Keys `shifted_audio_to_<dst>_<metric>_frozen` / `_adapted` for recall@1 and MRR."""
    directions = [("audio", "image"), ("audio", "text")]
    out: dict[str, float] = {"shifted_audio_noise": noise}
    embeddings = dict(clean or {m: embed_all(model, data, m, 128, 0.0, seed) for m in ("text", "image")})
    embeddings["audio"] = embed_all(model, data, "audio", 128, noise, seed)  # only the audio shifts
    for tag, adapt in (("frozen", False), ("adapted", True)):
        scores = evaluate_retrieval(model, data, adapt=adapt, audio_noise=noise, seed=seed, directions=directions,
                                    embeddings=embeddings)  # fmt: skip
        for source, target in directions:
            for metric in ("recall@1", "mrr"):
                out[f"shifted_{source}_to_{target}_{metric}_{tag}"] = scores[f"retrieval_{source}_to_{target}_{metric}"]
    return out


def subset(data: TriModalDigits, rows: np.ndarray) -> TriModalDigits:
    return TriModalDigits(data.text[rows], data.images[rows], data.audio[rows], data.digits[rows], data.languages[rows],
                          data.cells_per_bin)  # fmt: skip


def summary_parts(metrics: dict[str, Any]) -> list[str]:
    """One cell's result in words: the network that ran, then Recall@1 in all six directions."""
    network = (f"{metrics['network']} preset {metrics['preset']} ({metrics['parameters'] / 1e6:.1f}M), central memory "
               f"{metrics['central_memory']}, modality memories {metrics['modality_memories']}, ttt mode "
               f"{metrics['ttt_mode']}, schedule {metrics['schedule']}, {metrics['device']}")  # fmt: skip
    recalls = [f"{a}->{b} {metrics[f'retrieval_{a}_to_{b}_recall@1']:.3f}" for a, b in itertools.permutations(MODALITIES, 2)]
    return [network, f"Recall@1 {' '.join(recalls)}", f"test accuracy {metrics['test_accuracy']:.3f}"]
