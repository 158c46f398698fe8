"""`hgrn-spiking`: the hierarchically gated recurrence (Qin et al. 2023) in the form Loihi 2's fixed-point
neurons run.

HGRN's token mixer is a diagonal linear recurrence h_t = f_t * h_{t-1} + (1 - f_t) * c_t whose forget gate f
has a lower bound that rises with depth (`functional.hgrn.layer_lower_bounds`: the first layer's bound is 0,
each deeper one higher), so low layers forget fast and high layers hold information long. A Loihi 2 CUBA-LIF
neuron is a diagonal linear recurrence too: its current u_t = (1 - (du + 1)/4096) u_{t-1} + a_t and its voltage
v_t = (1 - dv/4096) v_{t-1} + u_t, with 12-bit decays du, dv. This module keeps the recurrence and its
hierarchy and carries the forget gates as those decays:

    input     : front-end spikes -> `dim` neurons, one layer per modality (the float hgrn's input projection;
                the model's own decays)
    layer l   : `dim` neurons (l = 1..`layers`, shared by every modality) whose current keep and voltage keep
                are learned forget gates  f = lb_l + (1 - lb_l) * sigmoid(g),  g two logits per layer, lb_l
                HGRN's lower bound from learned logits (`layer_lower_bounds`), rising with depth; quantized to
                Loihi's 12 bits (du = 4095 - round(4096 f_u), dv = 4096 - round(4096 f_v)), straight through.
                With `recurrent`, an all-to-all recurrent synapse (Loihi's recurrent Dense) as well.

The chain input -> layer 1 -> ... -> layer L -> Loihi readout is one chain of chip layers (`chip_layers`), so
a cell exports as one netx file (each layer with its own du, dv) and runs bit-exact on Lava.

What it drops, and why (checked in lava-nc 0.10's fixed-point models):
- input-dependent gates. HGRN's f_t, its candidate silu(x W_c) and its output gate silu(x W_g) multiply two
  activity-driven signals. Lava's LIF takes du and dv as one value per process (`LIF.du = Var(shape=(1,))`), so
  a decay can be learned but is a constant while the network runs: per layer, not per neuron and not per step.
  Lava 0.10 does have fixed-point graded spikes (`GradedVec`, Dense's `num_message_bits`) and a product neuron
  (`prodneuron.ProdNeuron`: v = (a1 * a2) >> exp, a graded spike where |v| > vth), but not in the LIF/Dense
  chain neuromem's netx files and Lava backend express (and its fixed-point model sends its output twice a
  step), so none of them is used here: the gate is the decay, the candidate is the synaptic drive (its (1 - f)
  factor folded into the weights), spikes stay binary.
- per-channel bounds and gates: one bound and one pair of decays per layer (the chip's granularity above).
- the output gate, the norms, the residual connections and the GLU channel mixer: each is a product, a
  division or a skip around a layer; a chain of Loihi layers has none. Each layer's spikes are its output.

Learning the decays: the compiled Loihi kernels take du and dv as integers, so the gradient of the keeps is
added beside them (`_DecayGradient`): from the kernels' gradient of the synaptic drive a_t (= 64 dL/du_t on
Loihi's scale), dL/d keep_u = sum_t dL/du_t u_{t-1} and dL/d keep_v = sum_t (dL/du_t - keep_u dL/du_{t+1})
v_{t-1}, averaged over the layer's neuron-steps (Adam takes it at any scale; the average keeps it from
dominating the trainer's clipped gradient norm). The forward is the chip's arithmetic, bit for bit.

On other neuron models (lif, cuba, the dense twin) the layers are the model's own, with its own decays: the
learned decays are Loihi's. The representation is the last layer's firing rate (batch, dim); the readout reads
its spike train. Firing-rate band as in the other spiking memories (`rate_band_loss`, training only).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from neuromem.memory.base import OUTPUT_SPIKES, MemoryModule, MemoryOutput, check_positive_int, register_memory
from neuromem.memory.functional.hgrn import layer_lower_bounds
from neuromem.memory.hopfield_spiking import HIDDEN_RATE
from neuromem.memory.spiking_layers import (
    RateInitOptions,
    init_for_rate,
    layer_kinds,
    rate_band_active,
    rate_band_penalty,
    set_surrogate_slope,
)
from neuromem.neurons.functional.loihi import (
    ACTIVATION_SHIFT,
    DECAY_UNITY,
    delay_one_step,
    loihi_sequence,
    quantize_weight,
    shift_activation,
)
from neuromem.neurons.loihi import HIDDEN_DEFAULTS, LoihiLinear, LoihiReadout, unary_spikes

# the keeps (current, voltage) per step of the Loihi layers' default decays (du 511, dv 256): the gates' start
DEFAULT_KEEPS = ((DECAY_UNITY - 1 - HIDDEN_DEFAULTS["du"]) / DECAY_UNITY, (DECAY_UNITY - HIDDEN_DEFAULTS["dv"]) / DECAY_UNITY)


class _DecayGradient(torch.autograd.Function):
    """Forward: the synaptic drive unchanged. Backward: its gradient unchanged, and the gradient of the two keep
    factors the neurons ran with (see the module docstring), from what the run left in `record` (spikes,
    voltages after reset, the recurrent weight and its exponent)."""

    @staticmethod
    def forward(ctx, drive, keeps, record):
        ctx.record = record
        ctx.save_for_backward(drive, keeps)
        return drive.clone()

    @staticmethod
    def backward(ctx, grad):
        drive, keeps = ctx.saved_tensors
        record = ctx.record
        keep_u, keep_v = (float(k) for k in keeps.detach())
        total = drive.detach().to(torch.float64)
        if record.get("recurrent") is not None:
            previous = delay_one_step(record["spikes"])
            total = total + shift_activation(previous @ record["recurrent"].t(), record["recurrent_exp"])
        scale = float(1 << ACTIVATION_SHIFT)
        current, currents = torch.zeros_like(total[0]), []
        for step in total:  # u_t = keep_u u_{t-1} + 64 a_t (the float form: this is a gradient)
            current = keep_u * current + scale * step
            currents.append(current)
        previous_u = delay_one_step(torch.stack(currents))
        previous_v = delay_one_step(record["voltages"])
        grad_u = grad.to(torch.float64) / scale
        grad_v = grad_u - keep_u * torch.cat([grad_u[1:], torch.zeros_like(grad_u[:1])])
        count = float(grad_u.numel())
        grad_keeps = torch.stack([(grad_u * previous_u).sum(), (grad_v * previous_v).sum()]) / count
        return grad, grad_keeps.to(keeps.dtype), None


class HGRULoihiLayer(LoihiLinear):
    """A Loihi layer whose current and voltage decays are HGRN forget gates over its `lower_bound` (a tensor the
    memory sets, carrying the bound's gradient): keep = lb + (1 - lb) sigmoid(gates), in 12 bits."""

    def __init__(self, in_features: int, out_features: int, **params) -> None:
        super().__init__(in_features, out_features, **params)
        self.gates = nn.Parameter(torch.logit(torch.tensor(DEFAULT_KEEPS, dtype=torch.float32)))
        self.lower_bound = torch.zeros(())

    def forgets(self) -> torch.Tensor:
        """(current keep, voltage keep) in [lb, 1), before quantization."""
        bound = self.lower_bound
        return bound + (1.0 - bound) * torch.sigmoid(self.gates)

    def keep_numerators(self) -> tuple[int, int]:
        """The 12-bit keeps the chip runs: (4096 - (du + 1), 4096 - dv)."""
        forgets = self.forgets().detach().double() * DECAY_UNITY
        current = min(max(int(torch.round(forgets[0])), 0), DECAY_UNITY - 1)
        voltage = min(max(int(torch.round(forgets[1])), 1), DECAY_UNITY - 1)
        return current, voltage

    def sync_decays(self) -> tuple[int, int]:
        """Set the neuron record (what runs and what is exported) to the quantized gates; returns them."""
        current, voltage = self.keep_numerators()
        self.parameters_ = dataclasses.replace(self.parameters_, du=DECAY_UNITY - 1 - current, dv=DECAY_UNITY - voltage)
        return current, voltage

    def run(self, inputs: torch.Tensor, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
        numerators = self.sync_decays()
        drive = delay_one_step(self.project(unary_spikes(inputs)))
        recurrent = quantize_weight(self.recurrent).to(torch.float64) if self.recurrent is not None else None
        record = {}
        forgets = self.forgets()
        if torch.is_grad_enabled() and forgets.requires_grad:
            quantized = torch.tensor(numerators, dtype=forgets.dtype) / DECAY_UNITY
            keeps = forgets + (quantized - forgets).detach()  # straight through the 12-bit rounding
            drive = _DecayGradient.apply(drive, keeps, record)
        spikes, voltages, _ = loihi_sequence(drive, self.parameters_, recurrent, self.recurrent_exp)
        record.update(spikes=spikes.detach(), voltages=voltages.detach(),
                      recurrent=None if recurrent is None else recurrent.detach(), recurrent_exp=self.recurrent_exp)
        return spikes.to(dtype), voltages.to(dtype)


@dataclass(frozen=True)
class SpikingHGRNOptions(RateInitOptions):
    """Besides the spiking memories' options and the input layer's input rate and init gain (`RateInitOptions`):
    the HGRN layers (the hierarchy needs >= 2) and an all-to-all recurrent synapse in each."""

    layers: int = 2
    recurrent: bool = False

    def check(self, memory: str) -> None:
        super().check(memory)
        check_positive_int(memory, layers=self.layers)
        if not isinstance(self.recurrent, bool):
            raise ValueError(f"{memory} option recurrent must be true or false, got {self.recurrent!r}")


@register_memory("hgrn-spiking", "hierarchically gated recurrence of spiking layers: learned per-layer current and "
                 "voltage decays over HGRN's rising lower bound (Loihi du/dv)", SpikingHGRNOptions, loihi_exportable=True)
class SpikingHGRNMemory(MemoryModule):
    spiking = True

    def build(self, o: SpikingHGRNOptions) -> None:
        kinds = layer_kinds(o.neuron, o.neuron_params)
        dim, gain = o.width, float(o.init_gain)
        self.rate_band = o.rate_band
        self.inputs = nn.ModuleDict({m: kinds.linear(size, dim) for m, size in self.input_sizes.items()})
        # Loihi's layers (their readout is Loihi's): the decays are learned gates
        loihi = isinstance(kinds.spike_readout, type) and issubclass(kinds.spike_readout, LoihiReadout)
        make = self._loihi_layer(dict(o.neuron_params)) if loihi else kinds.linear
        self.blocks = nn.ModuleList(make(dim, dim, recurrent=o.recurrent) for _ in range(o.layers))
        for layer in self.inputs.values():
            init_for_rate(layer, float(o.input_rate), gain)
        for block in self.blocks:
            init_for_rate(block, HIDDEN_RATE, gain)
        # equal logits: the bounds start at 0, 1/L, 2/L, ... (HGRN's), learned
        self.bound_logits = nn.Parameter(torch.ones(o.layers, 1)) if loihi else None
        set_surrogate_slope([*self.inputs.values(), *self.blocks], o.slope)
        self.output_size = dim

    @staticmethod
    def _loihi_layer(params: dict):
        return lambda size_in, size_out, recurrent: HGRULoihiLayer(size_in, size_out, recurrent=recurrent, **params)

    def lower_bounds(self) -> torch.Tensor | None:
        """Each HGRN layer's lower bound (layers,), rising with depth; None off Loihi (no learned decays)."""
        return None if self.bound_logits is None else layer_lower_bounds(self.bound_logits)[:, 0]

    def _set_bounds(self, detached: bool = False) -> None:
        bounds = self.lower_bounds()
        if bounds is None:
            return
        for block, bound in zip(self.blocks, bounds.detach() if detached else bounds):
            block.lower_bound = bound

    def chip_layers(self, modality: str) -> list[nn.Module]:
        """The memory's layers in signal order for one modality, their decays set from the trained gates."""
        self._set_bounds(detached=True)
        for block in self.blocks:
            if isinstance(block, HGRULoihiLayer):
                block.sync_decays()
        return [self.inputs[modality], *self.blocks]

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> MemoryOutput:
        self._set_bounds()  # the bounds' graph, for this forward only (a module holding it could not be copied)
        representations, spikes, layer_spikes = {}, {}, {}
        try:
            for modality, x in inputs.items():
                trains = [self.inputs[modality](x)]
                for block in self.blocks:
                    trains.append(block(trains[-1]))
                spikes[modality] = trains[-1]
                representations[modality] = trains[-1].mean(0)
                if self.training and rate_band_active(*self.rate_band):
                    layer_spikes[modality] = trains
        finally:
            self._set_bounds(detached=True)
        extras = {OUTPUT_SPIKES: spikes, "layer_spikes": layer_spikes}
        bounds = self.lower_bounds()
        if bounds is not None:  # for logging: each layer's bound and its quantized (current, voltage) keeps
            extras["lower_bounds"] = bounds.detach()
            extras["keeps"] = torch.tensor([b.keep_numerators() for b in self.blocks]) / DECAY_UNITY
        return MemoryOutput(representations, extras)

    def auxiliary_loss(self, output: MemoryOutput, labels: torch.Tensor) -> torch.Tensor:
        zero = next(iter(output.representations.values())).new_zeros(())
        return rate_band_penalty(output.extras["layer_spikes"], self.rate_band, zero)
