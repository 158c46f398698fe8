"""Spiking front ends: one per sensory modality, each mapping (T, batch, *input_shape)
to a spike train (T, batch, features) that a memory module reads.

The neuron kind is a parameter: each registered spiking model ("lif", "cuba", "alif", ...) gives spiking layers,
"loihi" Loihi 2 fixed-point CUBA-LIF layers behind 8-bit weights (bit-exact
with Lava, `neuromem.neurons.loihi`), "dense" the ANN-equivalent (ReLU) graph
with the same synapses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from neuromem.models.dense_layers import DenseConv2d, DenseLinear
from neuromem.neurons.delays import delay_synapses
from neuromem.neurons.layers import SpikingConv2d, SpikingLinear
from neuromem.neurons.models import get_neuron, neuron_names
from neuromem.neurons.loihi import LoihiConv2d, LoihiLinear, LoihiSpikeReadout


@dataclass(frozen=True)
class LayerKinds:
    linear: Callable[..., nn.Module]
    conv2d: Callable[..., nn.Module]
    spiking: bool
    # readout of a spiking memory's output spike train (T, batch, in) -> logits; None: nn.Linear on the
    # memory's representation (a chip's readout must be its own neurons, a float one is not)
    spike_readout: Callable[..., nn.Module] | None = None


def _spiking(neuron: str) -> LayerKinds:
    return LayerKinds(
        linear=lambda *a, **kw: SpikingLinear(*a, neuron=neuron, **kw),
        conv2d=lambda *a, **kw: SpikingConv2d(*a, neuron=neuron, **kw),
        spiking=True,
    )


NEURON_LAYERS: dict[str, LayerKinds] = {
    # every registered neuron model that the spiking layers run (neuromem.neurons.models)
    **{name: _spiking(name) for name in neuron_names() if get_neuron(name).spiking_layers},
    "loihi": LayerKinds(linear=LoihiLinear, conv2d=LoihiConv2d, spiking=True, spike_readout=LoihiSpikeReadout),
    "dense": LayerKinds(linear=DenseLinear, conv2d=DenseConv2d, spiking=False),
}


def layer_kinds(neuron: str, **neuron_params) -> LayerKinds:
    """The layer factories of `neuron`; `neuron_params` (fields of its parameter record, e.g. reset="zero") are
    given to every layer they make, unless a call gives its own."""
    try:
        kinds = NEURON_LAYERS[neuron]
    except KeyError:
        raise KeyError(f"unknown neuron {neuron!r}; valid: {', '.join(NEURON_LAYERS)}") from None
    if not neuron_params:
        return kinds
    return dataclasses.replace(kinds, linear=_bound(kinds.linear, neuron_params),
                               conv2d=_bound(kinds.conv2d, neuron_params))


def _bound(factory: Callable[..., nn.Module], params: dict) -> Callable[..., nn.Module]:
    return lambda *args, **kwargs: factory(*args, **{**params, **kwargs})


class AudioFrontEnd(nn.Module):
    """SHD: 700 cochlear channels -> feed-forward spiking layer -> recurrent spiking layer.

    `init_gain`: the float spiking layers' feed-forward weights start at this multiple of torch's default
    (uniform +-1/sqrt(fan_in)). Cochlear spikes are sparse: at 1x the layers are nearly silent at init
    (0.7% / 0.1% of neurons per step on the speech stand-in) and learn slowly. Loihi layers have their own
    `init_scale`; dense (ReLU) layers keep 1x. A `beta` given in the neuron parameters overrides
    `membrane_decay`. The measurements that chose both defaults are in datasets/README.md.

    `delays`: learnable per-synapse delays (DCLS) of 0..delays-1 steps on both layers' feed-forward
    synapses (`neuromem.neurons.delays`; the recurrent weight stays undelayed), taps of width `delay_sigma`
    while training; 0: none, the plain layers.
    """

    # membrane decay per step of the float spiking models (their own default is 0.9): at SHD's 100 bins
    # of 14 ms, tau ~ 39 ms instead of 133 ms
    membrane_decay = 0.7

    def __init__(self, input_shape: tuple[int, ...], hidden: int = 256, neuron: str = "lif",
                 init_gain: float = 4.0, delays: int = 0, delay_sigma: float | None = None,
                 dropout: float = 0.0, **neuron_params) -> None:
        super().__init__()
        if not init_gain > 0:
            raise ValueError(f"init_gain must be > 0, got {init_gain}")
        if int(delays) != delays or delays < 0:
            raise ValueError(f"delays must be a whole number of steps >= 0, got {delays!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        # spike dropout after each layer, training only (SHD work: Cramer et al. 2020, Hammouamri et al. 2024)
        self.dropout = float(dropout)
        kinds = layer_kinds(neuron)
        if neuron in neuron_names() and "beta" in get_neuron(neuron).parameters.__dataclass_fields__:
            neuron_params = {"beta": self.membrane_decay, **neuron_params}
        (channels,) = input_shape
        self.layers = nn.Sequential(
            kinds.linear(channels, hidden, **neuron_params),
            kinds.linear(hidden, hidden, recurrent=True, **neuron_params),
        )
        with torch.no_grad():
            for layer in self.layers:
                if isinstance(layer, SpikingLinear):
                    layer.synapse.weight.mul_(init_gain)
        for layer in self.layers if delays else ():
            delay_synapses(layer, int(delays), delay_sigma)
        self.output_size = hidden

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not (self.dropout and self.training):
            return self.layers(inputs)
        for layer in self.layers:
            inputs = nn.functional.dropout(layer(inputs), self.dropout)
        return inputs


class VisualFrontEnd(nn.Module):
    """N-MNIST: 2x34x34 event frames -> two strided spiking convolutions -> spiking dense layer."""

    def __init__(self, input_shape: tuple[int, ...], hidden: int = 256, neuron: str = "lif", **neuron_params) -> None:
        super().__init__()
        kinds = layer_kinds(neuron)
        channels, height, width = input_shape
        self.convs = nn.Sequential(
            kinds.conv2d(channels, 16, 5, stride=2, padding=2, **neuron_params),
            kinds.conv2d(16, 32, 3, stride=2, padding=1, **neuron_params),
        )
        with torch.no_grad():
            flat = self.convs[1].synapse(self.convs[0].synapse(torch.zeros(1, channels, height, width))).numel()
        self.dense = kinds.linear(flat, hidden, **neuron_params)
        self.output_size = hidden

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        # the dense layer takes the frames (T, batch, C, H, W) and flattens them itself (C, H, W order):
        # channels-last spikes from the sparse convolution are then read as they lie, not transposed
        return self.dense(self.convs(inputs))


class LayerListFrontEnd(nn.Module):
    """A front end given layer by layer: what `neuromem import` builds from a NIR graph's chain of layers, chosen
    with the front option front_end="layers" (`build_front_end`) whatever the data set's own front end.

    `layers`: one record (a dict) per spiking layer, in signal order: "kind" ("linear" or "conv"), "in" and "out"
    (features or channels), for a convolution "kernel", "stride", "padding", "recurrent" (a linear layer's
    all-to-all recurrent weight), "neuron" (a registered neuron model) and "parameters" (its parameter record's
    fields), and for a Loihi layer "recurrent_exp". A dense layer after convolutions reads their (C, H, W) frames
    flattened. `source`: the digest of the graph the weights came from (part of the cell's identity only)."""

    def __init__(self, input_shape: tuple[int, ...], hidden: int = 256, neuron: str = "lif", layers=(),
                 source: str = "", **neuron_params) -> None:
        super().__init__()
        if not layers:
            raise ValueError("a layers front end needs at least one layer record")
        built = []
        for index, spec in enumerate(layers):
            spec = dict(spec)
            model, params = spec.get("neuron", neuron), dict(spec.get("parameters") or {})
            kinds = layer_kinds(model)
            try:
                if spec.get("kind") == "conv":
                    built.append(kinds.conv2d(int(spec["in"]), int(spec["out"]), int(spec["kernel"]),
                                              stride=int(spec.get("stride", 1)), padding=int(spec.get("padding", 0)),
                                              **params))
                elif spec.get("kind") == "linear":
                    extra = {"recurrent_exp": int(spec["recurrent_exp"])} if "recurrent_exp" in spec else {}
                    built.append(kinds.linear(int(spec["in"]), int(spec["out"]), recurrent=bool(spec.get("recurrent")),
                                              **params, **extra))
                else:
                    raise ValueError(f"kind {spec.get('kind')!r} is not linear or conv")
            except (KeyError, TypeError) as error:
                raise ValueError(f"layer record {index} ({spec.get('kind')}) does not build: {error}") from None
        self.layers = nn.Sequential(*built)
        self.output_size = int(layers[-1]["out"])
        if layers[-1].get("kind") == "conv":
            raise ValueError("a layers front end ends in a dense layer (the readout reads features, not frames)")

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs)


# front-end networks by kind; a data set's registry entry names the kind that reads it (`front_end`), the
# front option front_end=KIND another ("layers": the cells `neuromem import` builds)
FRONT_ENDS: dict[str, type[nn.Module]] = {"audio": AudioFrontEnd, "visual": VisualFrontEnd, "layers": LayerListFrontEnd}


def build_front_end(dataset: str, input_shape: tuple[int, ...], **kwargs) -> nn.Module:
    """The front end the registered data set `dataset` names (or the keyword `front_end` names), for inputs of
    `input_shape` per time bin."""
    from neuromem.data.registry import get_dataset  # on use: building a front end needs the registry, importing models does not

    kind = kwargs.pop("front_end", None) or get_dataset(dataset).front_end
    try:
        cls = FRONT_ENDS[kind]
    except KeyError:
        raise KeyError(f"data set {dataset!r} names front end {kind!r}, which is not registered; "
                       f"valid: {', '.join(FRONT_ENDS)}") from None
    return cls(input_shape, **kwargs)


def check_front_options(dataset: str, input_shape: tuple[int, ...], options: dict, neuron: str) -> None:
    """--front-option values for a data set's front end, before any training: each key must be a keyword of
    that front end (or a parameter of the neuron model) and the front end must build with it."""
    import inspect

    from neuromem.errors import NeuromemError
    from neuromem.data.registry import get_dataset

    if not options:
        return
    cls = FRONT_ENDS[get_dataset(dataset).front_end]
    own = [k for k, p in inspect.signature(cls.__init__).parameters.items()
           if k not in ("self", "input_shape", "hidden", "neuron") and p.kind is not inspect.Parameter.VAR_KEYWORD]
    try:
        with torch.device("meta"):
            cls(input_shape, hidden=8, neuron=neuron, **options)
    except (TypeError, ValueError) as error:
        reason = " ".join(str(error).split())
        raise NeuromemError(f"--front-option {' '.join(f'{k}={v}' for k, v in options.items())} for the {dataset} "
                            f"front end ({cls.__name__}, neuron {neuron}): {reason}; its options: {', '.join(own)} "
                            "and the neuron model's parameters") from None
