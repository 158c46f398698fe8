"""`ttt`: test-time-training memories — slots that keep learning from the test stream.

`TTTMemoryBlock` is the reusable unit (the dense tri-modal network uses it
too): trained slots read by attention, plus a write rule applied at inference
(math in `neuromem.memory.functional.ttt`):

- ``mode="attention"``: gated writes S_s <- S_s(1 - g w) + u g w, with u and g
  from small networks over [slot, input summary] and w the read attention;
- ``mode="gradient"``: a few gradient steps on the slots against a
  self-supervised loss (reconstructing the input summary from the read-out).

When writes happen, and how training learns them (the design choice):

- In eval mode, every forward first *reads* with the current slots, then
  *writes* the batch into them under ``torch.no_grad()``: a batch is answered
  by what the stream before it taught the memory (read-then-write keeps each
  answer independent of its own batch). Writes go to an adapted copy; the
  trained slots (a parameter) are never touched, so `reset()` restores them
  exactly, and `memory_state()` / `load_memory_state()` save and inspect it.
- In training mode nothing persists. The write networks learn through
  *unrolled* writes: the batch is cut into `unroll_chunks` chunks (default 2)
  treated as a short stream — each chunk reads, then writes (differentiably),
  starting from the trained slots — the same read-then-write sequence as
  successive eval batches, so the task loss trains u, g (or, in gradient
  mode, the reconstruction decoder through the inner step) end to end.
- Switching to training mode discards test-time writes.

`TTTMemory` is the registry entry: per-modality TTT memories over each
modality's pooled spike train (firing rates in `time_bins` windows, default 10:
against 4 on the speech SHD stand-in, 5 epochs, test 0.76 -> 0.83), then one central TTT memory shared by all
modalities, with a feedback loop (latent <- latent + f(latent), then re-read
the central memory) of `feedback_steps` steps. Each modality's representation
is its own central latent (so per-modality accuracy uses that modality only);
the shared central memory puts all modalities in one space, which the
auxiliary cross-modal contrastive loss aligns by label and `retrieve` uses.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from neuromem.memory.functional.pooling import binned_rates
from neuromem.memory.base import MemoryModule, MemoryOptions, MemoryOutput, register_memory
from neuromem.memory.functional.ttt import (
    WRITE_MODES,
    TTTParameters,
    gated_write,
    gradient_write,
    read_slots,
    reconstruction_loss,
)


def _check_range(name: str, value, low, high=None, integer: bool = False) -> None:
    bad = (integer and (not isinstance(value, int) or isinstance(value, bool))) or value < low
    bad = bad or (high is not None and value > high)
    if bad:
        valid = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"ttt option {name}={value!r} is out of range; valid: {'an integer ' if integer else ''}{valid}")


@dataclass(frozen=True)
class TTTBlockOptions(MemoryOptions):
    """How a `TTTMemoryBlock` reads and writes (see the module doc)."""

    mode: str = "attention"
    write_hidden: int = 64
    beta: float = 1.0
    write_rate: float = 0.1
    grad_steps: int = 1
    grad_lr: float = 0.1
    test_time_writes: bool = True
    unrolled_writes: bool = True
    unroll_chunks: int = 2

    def check(self, memory: str) -> None:
        super().check(memory)
        if self.mode not in WRITE_MODES:
            raise ValueError(f"ttt option mode={self.mode!r} is not valid; valid: {', '.join(WRITE_MODES)}")
        _check_range("write_hidden", self.write_hidden, 1, integer=True)
        _check_range("beta", self.beta, 1e-6)
        _check_range("write_rate", self.write_rate, 0.0, 1.0)
        _check_range("grad_steps", self.grad_steps, 1, integer=True)
        _check_range("grad_lr", self.grad_lr, 0.0)
        _check_range("unroll_chunks", self.unroll_chunks, 2, integer=True)

    def block_options(self) -> dict:
        """This record's own fields (what a `TTTMemoryBlock` takes), from a record that extends it."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(TTTBlockOptions)}


class TTTMemoryBlock(nn.Module):
    """Slots (num_slots, dim) read by attention and written at test time.

    forward(summary (B, dim)) -> (read-out (B, dim), attention (B, num_slots)).
    The caller adds the read-out to its own stream (residual). Options: `TTTBlockOptions`.
    """

    def __init__(self, num_slots: int, dim: int, drift_compensation: bool = False, **options) -> None:
        super().__init__()
        _check_range("num_slots", num_slots, 1, integer=True)
        _check_range("dim", dim, 1, integer=True)
        o = TTTBlockOptions.parse("ttt", options)
        mode, write_hidden, unroll_chunks = o.mode, o.write_hidden, o.unroll_chunks
        self.unroll_chunks = unroll_chunks
        self.mode, self.num_slots, self.dim = mode, num_slots, dim
        self.parameters_ = TTTParameters(beta=o.beta, write_rate=o.write_rate, grad_steps=o.grad_steps, grad_lr=o.grad_lr)
        self.test_time_writes, self.unrolled_writes = o.test_time_writes, o.unrolled_writes
        self.slots = nn.Parameter(torch.randn(num_slots, dim) / math.sqrt(dim))
        # drift compensation addresses slots in the input space itself, so their drift is an input-space shift
        self.drift_compensation = drift_compensation
        self.query = nn.Identity() if drift_compensation else nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        if mode == "attention":
            self.value_net = nn.Sequential(nn.Linear(2 * dim, write_hidden), nn.GELU(), nn.Linear(write_hidden, dim))
            self.gate_net = nn.Sequential(nn.Linear(2 * dim, write_hidden), nn.GELU(), nn.Linear(write_hidden, 1))
        else:
            # decodes the read-out back to the query: the self-supervised target of the inner loop
            self.decoder = nn.Linear(dim, dim)
        self.adapted: torch.Tensor | None = None  # slots after test-time writes; None = the trained slots
        self.writes = 0

    # --- state -----------------------------------------------------------------------------
    def current_slots(self) -> torch.Tensor:
        return self.slots if self.adapted is None else self.adapted

    def memory_state(self) -> torch.Tensor:
        """A copy of the slots as they are now (trained slots plus any test-time writes)."""
        return self.current_slots().detach().clone()

    def load_memory_state(self, state: torch.Tensor) -> None:
        if state.shape != self.slots.shape:
            raise ValueError(f"memory state of shape {tuple(state.shape)} does not fit slots {tuple(self.slots.shape)}")
        self.adapted = state.detach().clone().to(self.slots)

    def reset(self) -> None:
        """Forget every test-time write: reads use the trained slots again, bit for bit."""
        self.adapted, self.writes = None, 0

    def train(self, mode: bool = True) -> "TTTMemoryBlock":
        if mode:
            self.reset()
        return super().train(mode)

    # --- read / write ------------------------------------------------------------------------
    def write(self, slots: torch.Tensor, queries: torch.Tensor, weights: torch.Tensor, differentiable: bool) -> torch.Tensor:
        """New slots after writing the batch's queries (B, dim); pure (returns, does not store)."""
        if self.mode == "gradient":
            return gradient_write(slots, queries, self.parameters_, self.decoder, differentiable)
        pairs = [slots.unsqueeze(0), queries.unsqueeze(1)]  # every (sample, slot) pair: (B, S, D) each
        return gated_write(slots, weights, self.update_network(pairs), self.gate_network(pairs).squeeze(-1))

    # --- the design document's names for the pieces of the attention write -------------------
    @property
    def memory(self) -> torch.Tensor:
        """The slots as they are now (num_slots, dim): the trained ones plus any test-time writes."""
        return self.current_slots()

    @property
    def temperature(self) -> float:
        """Softmax temperature of the read: attention = softmax(query @ memory.T / temperature)."""
        return math.sqrt(self.dim) / self.parameters_.beta

    def update_network(self, slot_and_summary) -> torch.Tensor:
        """The value a write stores, from [memory slot, input summary] (broadcast to one shape, ..., dim):
        the summary, corrected per slot by a small network."""
        slot, summary = torch.broadcast_tensors(*slot_and_summary)
        return summary + self.value_net(torch.cat([slot, summary], dim=-1))

    def gate_network(self, slot_and_summary) -> torch.Tensor:
        """The write gate (..., 1) in [0, write_rate] from [memory slot, input summary]."""
        slot, summary = torch.broadcast_tensors(*slot_and_summary)
        return self.parameters_.write_rate * torch.sigmoid(self.gate_net(torch.cat([slot, summary], dim=-1)))

    def read(self, summary: torch.Tensor) -> torch.Tensor:
        """summary + what the memory recalls for it (B, dim), without writing (the feedback loop's re-read)."""
        output, _ = self.forward(summary, write=False)
        return summary + output

    def attend(self, queries: torch.Tensor, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Read-out (B, dim) and attention (B, num_slots) of already projected queries over `slots`."""
        read, weights = read_slots(queries, slots, self.parameters_.beta)
        output = self.out(read)
        if self.drift_compensation and slots is not self.slots:
            # how far the attended slots have followed the stream since the trained state: subtract that shift
            output = output - weights @ (slots - self.slots)
        return output, weights

    def forward(self, summary: torch.Tensor, write: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        queries = self.query(summary)
        if self.training:
            batch = queries.shape[0]
            if not (self.unrolled_writes and write and batch >= 2):
                return self.attend(queries, self.slots)
            # the batch as a short stream: each chunk is read, then written, like successive eval batches
            chunks = queries.split(math.ceil(batch / min(self.unroll_chunks, batch)))
            slots, outputs, weights = self.slots, [], []
            for i, chunk in enumerate(chunks):
                output, chunk_weights = self.attend(chunk, slots)
                outputs.append(output)
                weights.append(chunk_weights)
                if i < len(chunks) - 1:
                    slots = self.write(slots, chunk, chunk_weights, differentiable=True)
            return torch.cat(outputs), torch.cat(weights)
        slots = self.current_slots()
        output, weights = self.attend(queries, slots)
        if write:
            self._keep_write(slots, queries, weights)
        return output, weights

    def remember(self, summary: torch.Tensor) -> None:
        """Eval mode: write a batch that was read earlier (with ``write=False``), as its forward would have."""
        if self.training:
            return  # nothing persists in training; the unrolled writes happen inside forward
        queries = self.query(summary)
        slots = self.current_slots()
        _, weights = self.attend(queries, slots)
        self._keep_write(slots, queries, weights)

    def _keep_write(self, slots: torch.Tensor, queries: torch.Tensor, weights: torch.Tensor) -> None:
        if self.test_time_writes:
            with torch.no_grad():
                self.adapted = self.write(slots.detach(), queries.detach(), weights.detach(), differentiable=False)
                self.writes += 1

    def self_supervised_loss(self, summary: torch.Tensor) -> torch.Tensor:
        """Gradient mode: the reconstruction loss the inner loop descends (train it so it means something)."""
        if self.mode != "gradient":
            return summary.new_zeros(())
        return reconstruction_loss(self.slots, self.query(summary), self.parameters_.beta, self.decoder)


@dataclass(frozen=True)
class TTTOptions(TTTBlockOptions):
    """The registry module's options: the blocks' (`TTTBlockOptions`), then its own."""

    dim: int = 128
    num_slots: int = 32  # per modality
    central_slots: int = 64
    feedback_steps: int = 2
    time_bins: int = 10
    drift_compensation: bool = False  # the modality memories' reads (see TTTMemoryBlock)
    align_weight: float = 0.1
    temperature: float = 0.1
    recon_weight: float = 0.1

    def check(self, memory: str) -> None:
        super().check(memory)
        _check_range("num_slots", self.num_slots, 1, integer=True)
        _check_range("dim", self.dim, 1, integer=True)
        _check_range("central_slots", self.central_slots, 1, integer=True)
        _check_range("feedback_steps", self.feedback_steps, 0, integer=True)
        _check_range("time_bins", self.time_bins, 1, integer=True)
        _check_range("align_weight", self.align_weight, 0.0)
        _check_range("temperature", self.temperature, 1e-6)
        _check_range("recon_weight", self.recon_weight, 0.0)


@register_memory("ttt", "test-time-training memories: attention-read slots with gated or gradient writes at inference",
                 TTTOptions)
class TTTMemory(MemoryModule):
    adapts_at_test_time = True

    def build(self, o: TTTOptions) -> None:
        dim, num_slots, time_bins, block = o.dim, o.num_slots, o.time_bins, o.block_options()
        self.time_bins = time_bins
        self.project = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(size * time_bins, dim), nn.LayerNorm(dim)) for m, size in self.input_sizes.items()}
        )
        self.modality_memories = nn.ModuleDict(
            {m: TTTMemoryBlock(num_slots, dim, drift_compensation=o.drift_compensation, **block) for m in self.input_sizes}
        )
        self.central = TTTMemoryBlock(o.central_slots, dim, **block)
        self.feedback = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.feedback_steps = o.feedback_steps
        self.align_weight, self.temperature, self.recon_weight = o.align_weight, o.temperature, o.recon_weight
        self.output_size = dim

    def blocks(self) -> dict[str, TTTMemoryBlock]:
        return {**{f"modality.{m}": b for m, b in self.modality_memories.items()}, "central": self.central}

    def central_latent(self, summary: torch.Tensor, write: bool = True) -> torch.Tensor:
        """Central read, then `feedback_steps` x (latent + f(latent), re-read); only the first read writes."""
        read, _ = self.central(summary, write=write)
        latent = summary + read
        for _ in range(self.feedback_steps):
            latent = latent + self.feedback(latent)
            read, _ = self.central(latent, write=False)
            latent = latent + read
        return latent

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> MemoryOutput:
        representations, summaries = {}, {}
        for modality, spikes in inputs.items():
            if modality not in self.project:
                raise ValueError(f"ttt memory has no modality {modality!r}; built for {', '.join(self.modalities)}")
            summary = self.project[modality](binned_rates(spikes, self.time_bins))
            read, _ = self.modality_memories[modality](summary)
            summaries[modality] = summary + read
            representations[modality] = self.central_latent(summaries[modality])
        return MemoryOutput(representations, {"summaries": summaries})

    def auxiliary_loss(self, output: MemoryOutput, labels: torch.Tensor) -> torch.Tensor:
        reps = output.representations
        loss = next(iter(reps.values())).new_zeros(())
        names = list(reps)
        if self.align_weight > 0 and len(names) > 1:
            pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
            for a, b in pairs:
                loss = loss + self.align_weight * cross_modal_supcon(reps[a], reps[b], labels, self.temperature) / len(pairs)
        if self.recon_weight > 0 and self.central.mode == "gradient":
            for name, summary in output.extras["summaries"].items():
                block_loss = self.modality_memories[name].self_supervised_loss(summary.detach())
                loss = loss + self.recon_weight * (block_loss + self.central.self_supervised_loss(summary.detach()))
        return loss

    def retrieve(self, cue_modality: str, cue: torch.Tensor, target_modality: str) -> torch.Tensor:
        """The cue's central latent: the central memory is shared, so it lives in every modality's space."""
        return self.forward({cue_modality: cue}).representations[cue_modality]

    def reset_memory(self) -> None:
        for block in self.blocks().values():
            block.reset()

    def memory_state(self) -> dict[str, torch.Tensor]:
        return {name: block.memory_state() for name, block in self.blocks().items()}

    def load_memory_state(self, state: Mapping[str, torch.Tensor]) -> None:
        for name, block in self.blocks().items():
            block.load_memory_state(state[name])


def cross_modal_supcon(a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between two modalities' embeddings (B, D) where every same-label pair is a positive."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.t() / temperature
    positives = (labels.unsqueeze(1) == labels.unsqueeze(0)).float()
    positives = positives / positives.sum(1, keepdim=True).clamp_min(1.0)
    a_to_b = -(positives * F.log_softmax(logits, dim=1)).sum(1).mean()
    # the positive mask is symmetric, so the same row-normalised mask serves the b -> a direction
    b_to_a = -(positives * F.log_softmax(logits.t(), dim=1)).sum(1).mean()
    return (a_to_b + b_to_a) / 2
