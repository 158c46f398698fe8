"""Hook-based accounting of any evaluated nn.Module graph.

    with SynapticOperationCounter(model) as counter:
        model(batch)
    report = counter.report()          # AccountingReport, everything per sample

What is counted, and where:

* *neuron layers* — any module with a `synapse` attribute that is a Linear/Conv
  (neuromem's `SpikingLayer`, or a dense baseline layer built the same way):
  the synapse's operations, the optional `recurrent` (out, out) weight's
  operations (previous step's outputs x fan-out), and the layer's output
  activations (activation sparsity, neuron updates, spikes);
* *connections* — Linear/Conv modules outside neuron layers (memory
  projections, readouts): their operations;
* *activations* — standalone activation modules (ReLU, Sigmoid, as NeuroBench)
  for activation sparsity;
* *functional* — matrix products and convolutions executed outside those
  modules (e.g. a Hopfield memory's query x stored-pattern products), seen by a
  torch dispatch mode and counted dense (no input is skipped). NeuroBench does
  not count these; they are listed separately so the two can be compared.

Operations are ACs when the driving input is binary and MACs otherwise
(NeuroBench's rule, see `operations.py`). Per-sample numbers divide by the
number of samples the root module saw: the size of `batch_dim` (1: neuromem is
time-major) of the first tensor in each root call, or `report(samples=...)`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from neuromem.accounting.operations import (
    CONNECTION_TYPES,
    connection_operations,
    is_binary,
    matmul_macs,
    recurrent_operations,
    weight_zero_count,
)

ACTIVATION_TYPES = (nn.ReLU, nn.Sigmoid)  # NeuroBench's SUPPORTED_ACTIVATIONS


@dataclass
class LayerAccount:
    """Totals for one layer over everything the counter saw (not yet per sample)."""

    name: str
    kind: str  # "neuron" | "connection" | "activation" | "functional"
    module_type: str
    calls: int = 0
    activations: int = 0  # output elements over all steps and samples
    nonzero_activations: int = 0
    spikes: int = 0  # non-zero outputs of a layer whose outputs are binary
    neuron_updates: int = 0  # neuron-steps (outputs of a neuron layer)
    effective_acs: float = 0.0
    effective_macs: float = 0.0
    dense_ops: float = 0.0
    recurrent_effective: float = 0.0
    recurrent_dense: float = 0.0

    def add_operations(self, effective: float, dense: float, binary_input: bool) -> None:
        """Effective ops are accumulates when the inputs are spikes, multiply-accumulates otherwise."""
        if binary_input:
            self.effective_acs += effective
        else:
            self.effective_macs += effective
        self.dense_ops += dense

    @property
    def activation_sparsity(self) -> float | None:
        if not self.activations:
            return None
        return 1.0 - self.nonzero_activations / self.activations


@dataclass
class AccountingReport:
    """Per-sample accounting of one evaluated model (NeuroBench definitions)."""

    samples: int
    activation_sparsity: float  # pooled over all neuron/activation layers
    connection_sparsity: float
    footprint_bytes: int
    effective_acs_per_sample: float
    effective_macs_per_sample: float
    dense_ops_per_sample: float  # every synaptic op of the graph, no zero skipped
    functional_macs_per_sample: float  # part of the above done outside modules (not in NeuroBench)
    neuron_updates_per_sample: float
    spikes_per_sample: float
    layers: list[dict[str, Any]] = field(default_factory=list)  # per-layer, per sample

    @property
    def synops_per_sample(self) -> float:
        return self.effective_acs_per_sample + self.effective_macs_per_sample

    def layer_sparsity(self) -> dict[str, float]:
        return {
            layer["name"]: layer["activation_sparsity"]
            for layer in self.layers
            if layer["activation_sparsity"] is not None
        }

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["synops_per_sample"] = self.synops_per_sample
        return out


def connection_sparsity(model: nn.Module) -> float:
    """Zero weights / weights over Linear/Conv modules and neuron layers' recurrent weights.
    NeuroBench's ConnectionSparsity covers Linear/Conv/RNN modules only; neuromem's
    recurrent weights are raw parameters, which it does not see."""
    zeros = total = 0
    for module in model.modules():
        if isinstance(module, CONNECTION_TYPES):
            z, n = weight_zero_count(module)
            zeros, total = zeros + z, total + n
        recurrent = _recurrent_weight(module)
        if recurrent is not None:
            zeros += int((recurrent.detach() == 0).sum())
            total += recurrent.numel()
    return zeros / total if total else 0.0


def footprint_bytes(model: nn.Module) -> int:
    """Parameters and buffers in bytes (NeuroBench's Footprint)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def _recurrent_weight(module: nn.Module) -> torch.Tensor | None:
    weight = getattr(module, "recurrent", None)
    if isinstance(weight, torch.Tensor) and weight.dim() == 2 and weight.shape[0] == weight.shape[1]:
        return weight
    return None


def _is_neuron_layer(module: nn.Module) -> bool:
    return isinstance(getattr(module, "synapse", None), CONNECTION_TYPES)


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


class _FunctionalMatmulMode(TorchDispatchMode):
    """Counts matmuls/convolutions that run while no counted module is active."""

    def __init__(self, counter: "SynapticOperationCounter") -> None:
        super().__init__()
        self.counter = counter

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        output = func(*args, **kwargs)
        counter = self.counter
        if counter._counted_depth == 0 and not counter._busy:
            counter._busy = True  # the counting below must not count itself
            try:
                macs = matmul_macs(func, args, kwargs, output)
                if macs:
                    owner = counter._module_stack[-1] if counter._module_stack else "<root>"
                    account = counter._account(f"{owner} [functional]", "functional", str(func.overloadpacket))
                    account.calls += 1
                    account.effective_macs += macs
                    account.dense_ops += macs
            finally:
                counter._busy = False
        return output


class SynapticOperationCounter:
    """Context manager that counts while the model runs; `report()` afterwards."""

    def __init__(self, model: nn.Module, batch_dim: int = 1, count_functional: bool = True) -> None:
        self.model = model
        self.batch_dim = batch_dim
        self.count_functional = count_functional
        self.accounts: dict[str, LayerAccount] = {}
        self.samples = 0
        self._handles: list[Any] = []
        self._module_stack: list[str] = []
        self._counted_depth = 0
        self._busy = False
        self._mode: _FunctionalMatmulMode | None = None
        self._mode_active = False

    # -- lifecycle ---------------------------------------------------------
    def __enter__(self) -> "SynapticOperationCounter":
        owned_synapses = {}  # synapse id -> (owning neuron layer's name, its type)
        for name, module in self.model.named_modules():
            if _is_neuron_layer(module):
                owned_synapses[id(module.synapse)] = (name or "<root>", type(module).__name__)
        for name, module in self.model.named_modules():
            label = name or "<root>"
            counted = _is_neuron_layer(module) or isinstance(module, CONNECTION_TYPES)
            self._handles.append(module.register_forward_pre_hook(self._enter_module(label, counted)))
            if _is_neuron_layer(module):
                self._handles.append(module.register_forward_hook(self._neuron_output(label)))
            elif isinstance(module, CONNECTION_TYPES):
                owner, owner_type = owned_synapses.get(id(module), (label, type(module).__name__))
                kind = "neuron" if id(module) in owned_synapses else "connection"
                self._handles.append(module.register_forward_pre_hook(self._connection_input(owner, kind, owner_type)))
            elif isinstance(module, ACTIVATION_TYPES):
                self._handles.append(module.register_forward_hook(self._activation_output(label)))
            # registered last so it runs after the counting hooks above
            self._handles.append(module.register_forward_hook(self._leave_module(counted)))
        self._handles.append(self.model.register_forward_pre_hook(self._count_samples, with_kwargs=True))
        if self.count_functional:
            self._mode = _FunctionalMatmulMode(self)
            self._set_mode(True)
        return self

    def _set_mode(self, active: bool) -> None:
        if self._mode is None or active == self._mode_active:
            return
        if active:
            self._mode.__enter__()
        else:
            self._mode.__exit__(None, None, None)
        self._mode_active = active

    def __exit__(self, *exc_info) -> None:
        self._set_mode(False)
        self._mode = None
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._module_stack.clear()
        self._counted_depth = 0

    # -- hooks -------------------------------------------------------------
    def _account(self, name: str, kind: str, module_type: str) -> LayerAccount:
        if name not in self.accounts:
            self.accounts[name] = LayerAccount(name, kind, module_type)
        return self.accounts[name]

    def _enter_module(self, label: str, counted: bool):
        def hook(module, args):
            self._module_stack.append(label)
            if counted:
                self._counted_depth += 1
                if self._counted_depth == 1:
                    # nothing inside a counted module is functional: step out of the dispatch
                    # mode there, which keeps the time loops of spiking layers at full speed
                    self._set_mode(False)

        return hook

    def _leave_module(self, counted: bool):
        def hook(module, args, output):
            if self._module_stack:
                self._module_stack.pop()
            if counted:
                self._counted_depth -= 1
                if self._counted_depth == 0:
                    self._set_mode(True)

        return hook

    def _count_samples(self, module, args, kwargs):
        first = _first_tensor(args) if args else _first_tensor(kwargs or {})
        if first is None:
            return None
        dim = self.batch_dim if first.dim() > self.batch_dim else 0
        self.samples += int(first.shape[dim])
        return None

    def _connection_input(self, name: str, kind: str, module_type: str):
        def hook(module, args):
            inputs = args[0]
            self._busy = True
            try:
                effective, dense = connection_operations(module, inputs)
                account = self._account(name, kind, module_type)
                if kind == "connection":
                    account.calls += 1
                account.add_operations(effective, dense, is_binary(inputs))
            finally:
                self._busy = False

        return hook

    def _neuron_output(self, name: str):
        def hook(module, args, output):
            outputs = output[0] if isinstance(output, tuple) else output
            self._busy = True
            try:
                account = self._account(name, "neuron", type(module).__name__)
                account.calls += 1
                outputs = outputs.detach()
                nonzero = int((outputs != 0).sum())
                account.activations += outputs.numel()
                account.nonzero_activations += nonzero
                account.neuron_updates += outputs.numel()
                binary = is_binary(outputs)
                if binary:
                    account.spikes += nonzero
                recurrent = _recurrent_weight(module)
                if recurrent is not None:
                    neurons = recurrent.shape[0]
                    sequence = outputs.reshape(outputs.shape[0], -1, neurons)
                    effective, dense = recurrent_operations(sequence, recurrent)
                    account.recurrent_effective += effective
                    account.recurrent_dense += dense
                    account.add_operations(effective, dense, binary)
            finally:
                self._busy = False

        return hook

    def _activation_output(self, name: str):
        def hook(module, args, output):
            account = self._account(name, "activation", type(module).__name__)
            account.calls += 1
            account.activations += output.numel()
            account.nonzero_activations += int((output.detach() != 0).sum())

        return hook

    # -- results -----------------------------------------------------------
    def report(self, samples: int | None = None) -> AccountingReport:
        samples = samples if samples is not None else self.samples
        if samples <= 0:
            raise ValueError("the counter saw no samples: run the model inside the `with` block")
        layers = []
        activations = nonzero = 0
        totals = dict(acs=0.0, macs=0.0, dense=0.0, functional=0.0, updates=0.0, spikes=0.0)
        for account in self.accounts.values():
            activations += account.activations
            nonzero += account.nonzero_activations
            totals["acs"] += account.effective_acs
            totals["macs"] += account.effective_macs
            totals["dense"] += account.dense_ops
            totals["updates"] += account.neuron_updates
            totals["spikes"] += account.spikes
            if account.kind == "functional":
                totals["functional"] += account.dense_ops
            layers.append(
                {
                    "name": account.name,
                    "kind": account.kind,
                    "module_type": account.module_type,
                    "activation_sparsity": account.activation_sparsity,
                    "activations_per_sample": account.activations / samples,
                    "effective_acs_per_sample": account.effective_acs / samples,
                    "effective_macs_per_sample": account.effective_macs / samples,
                    "dense_ops_per_sample": account.dense_ops / samples,
                    "recurrent_effective_per_sample": account.recurrent_effective / samples,
                    "neuron_updates_per_sample": account.neuron_updates / samples,
                    "spikes_per_sample": account.spikes / samples,
                }
            )
        return AccountingReport(
            samples=samples,
            activation_sparsity=(1.0 - nonzero / activations) if activations else 0.0,
            connection_sparsity=connection_sparsity(self.model),
            footprint_bytes=footprint_bytes(self.model),
            effective_acs_per_sample=totals["acs"] / samples,
            effective_macs_per_sample=totals["macs"] / samples,
            dense_ops_per_sample=totals["dense"] / samples,
            functional_macs_per_sample=totals["functional"] / samples,
            neuron_updates_per_sample=totals["updates"] / samples,
            spikes_per_sample=totals["spikes"] / samples,
            layers=layers,
        )


def account_model(model: nn.Module, batches, batch_dim: int = 1, count_functional: bool = True) -> AccountingReport:
    """Evaluate `model` on every batch (each a tensor or a dict/tuple passed as one argument)
    under no_grad in eval mode and return its accounting."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), SynapticOperationCounter(model, batch_dim, count_functional) as counter:
            for batch in batches:
                model(batch)
        return counter.report()
    finally:
        model.train(was_training)
