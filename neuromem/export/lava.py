"""Export a Loihi network to the HDF5 layout lava-dl's netx reads, and read it back.

Layout (lava-dl `netx/hdf5.py`, `slayer/block/base.py::export_hdf5`):

    /layer/0   type=b"input", shape=[inputs]
    /layer/i   type=b"dense", shape=[out], inFeatures, outFeatures,
               weight (out, in) integer synaptic weights,
               neuron/{type=b"CUBA", iDecay, vDecay, vThMant, refDelay, gradedSpike}

netx maps `iDecay` to Lava's LIF `du = iDecay - 1` and `vDecay` to `dv`.
neuromem extensions (netx ignores them): `weightExponent` (netx assumes 0; neuromem
exports 0 by default), `recurrentWeight` + `recurrentWeightExponent` (netx has no
recurrent dense block; neuromem's Lava backend builds the recurrent Dense),
`neuron/biasMant`, `neuron/biasExp`, and root attributes describing the decision rule.
A dense layer with learnable delays adds `synapseDelay` (out, in) integer steps and `delayWindow`
(D: delays 0..D-1); neuromem's backend runs it as Lava's DelaySparse, where a spike sent at step t
with delay d reaches the neurons at t + 1 + d (the Dense's own step, then d more).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

import neuromem
from neuromem.errors import NeuromemError
from neuromem.neurons.functional.loihi import LoihiParameters
from neuromem.export.model import LoihiNetwork, LoihiNetworkConfig
from neuromem.export.netx import read_netx
from neuromem.neurons.delays import DelayedQuantizedDense

FORMAT = "lava-dl-netx-hdf5"


@dataclass
class ExportedLayer:
    weight: np.ndarray  # (out, in) int
    params: LoihiParameters
    recurrent_weight: np.ndarray | None
    recurrent_exp: int
    readout: bool
    conv: tuple[int, int] | None = None  # (stride, padding) of a convolution; weight is then (out, in, k, k)
    in_shape: tuple[int, ...] = ()
    delays: np.ndarray | None = None  # (out, in) integer synaptic delays in steps, beyond the Dense's own one
    delay_window: int = 0


def _int_array(tensor: torch.Tensor) -> np.ndarray:
    array = tensor.detach().cpu().numpy()
    rounded = np.rint(array)
    if not np.array_equal(array, rounded):
        raise ValueError("quantized weights are not integers")
    return rounded.astype(np.int32)


def export_lava(model, path: str | Path, dataset: str | None = None, time_bins: int | None = None,
                data_info: dict | None = None) -> Path:
    """Write `model` (quantized as in eval) to `path` (.h5); `dataset`/`time_bins`: the data it was trained
    on, recorded so that `hw verify` feeds it the same inputs; `data_info`: more about that data (its root
    and fingerprint), recorded beside them.

    A cell of several senses (`LoihiSenses`: joint, parallel) is one file holding each sense's chain in
    `sense/<name>/layer/...` (netx's layout, whose one `layer` group is one chain from one input, cannot hold two
    inputs): the joint cell's shared memory layers are in every sense's chain with the same weights, as in its
    NIR graph. The root's `neuromem_senses` names the senses; `hw verify` runs each on its own test samples."""
    from neuromem.export.model import LoihiSenses

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    senses = isinstance(model, LoihiSenses)
    with h5py.File(path, "w") as handle:
        handle.attrs["format"] = FORMAT
        handle.attrs["producer"] = f"neuromem {neuromem.__version__}"
        handle.attrs["decision"] = "argmax of the last layer's voltage at the final time step"
        handle.attrs["synaptic_delay"] = ("one time step per Dense, as Lava's Dense process; a layer's synapseDelay d "
                                          "adds d steps (Lava DelaySparse)")
        handle.attrs["neuromem_data"] = json.dumps({"dataset": None if senses else dataset, "time_bins": time_bins,
                                                    **(data_info or {})})
        if not senses:
            _write_chain(handle, model)
            return path
        handle.attrs["neuromem_senses"] = json.dumps({
            "modality": model.modality, "senses": list(model.senses), "shared_memory": model.shared,
            "concept_labels": model.concept_labels,
            "layout": "sense/<name>/layer: each sense's chain (front end, memory, readout); "
                      + ("the memory's layers the same weights in every chain (one shared memory)" if model.shared
                         else "one network per sense")})
        for sense, chain in model.chains.items():
            _write_chain(handle.create_group(f"sense/{sense}"), chain)
    return path


def _write_chain(root: h5py.Group, model: LoihiNetwork) -> None:
    """One chain in netx's layout under `root` (`layer/0` its input, `layer/1..` its layers)."""
    root.attrs["neuromem_config"] = json.dumps(asdict(model.config))
    layers = root.create_group("layer")
    first = layers.create_group("0")
    first.create_dataset("type", (1,), "S10", [b"input"])
    first.create_dataset("shape", data=np.array(model.config.input_shape))
    conv_shapes = _conv_shapes(model)
    for index, layer in enumerate(model.layers, start=1):
        group = layers.create_group(str(index))
        p = layer.neuron
        if index <= len(model.convs):
            in_shape, out_shape = conv_shapes[index - 1]
            synapse = layer.synapse
            group.create_dataset("type", (1,), "S10", [b"conv"])
            group.create_dataset("shape", data=np.array(out_shape))
            group.create_dataset("inShape", data=np.array(in_shape))
            group.create_dataset("stride", data=synapse.stride[0])
            group.create_dataset("padding", data=synapse.padding[0])
            group.create_dataset("weight", data=_int_array(synapse.integer_weight()))  # (out, in, k, k)
            group.create_dataset("weightExponent", data=p.weight_exp)
            _neuron_group(group, p)
            continue
        weight, recurrent = layer.integer_weights()
        group.create_dataset("type", (1,), "S10", [b"dense"])
        group.create_dataset("shape", data=np.array([layer.out_features]))
        group.create_dataset("inFeatures", data=layer.in_features)
        group.create_dataset("outFeatures", data=layer.out_features)
        group.create_dataset("weight", data=_int_array(weight))
        group.create_dataset("weightExponent", data=p.weight_exp)
        if recurrent is not None:
            group.create_dataset("recurrentWeight", data=_int_array(recurrent))
            group.create_dataset("recurrentWeightExponent", data=layer.recurrent_exp)
        if isinstance(layer.synapse, DelayedQuantizedDense):
            group.create_dataset("synapseDelay", data=_int_array(layer.synapse.integer_delays()))
            group.create_dataset("delayWindow", data=layer.synapse.window)
        group.attrs["readout"] = layer is model.readout
        _neuron_group(group, p)
        if p.bias_exp == 6 and p.bias_mant:
            group.create_dataset("bias", data=np.full(layer.out_features, p.bias_mant))


def _neuron_group(group: h5py.Group, p: LoihiParameters) -> None:
    neuron = group.create_group("neuron")
    neuron.create_dataset("type", (1,), "S10", [b"CUBA"])
    neuron.create_dataset("iDecay", data=p.du + 1)
    neuron.create_dataset("vDecay", data=p.dv)
    neuron.create_dataset("vThMant", data=p.vth)
    neuron.create_dataset("refDelay", data=1)
    neuron.create_dataset("gradedSpike", data=False)
    neuron.create_dataset("biasMant", data=p.bias_mant)
    neuron.create_dataset("biasExp", data=p.bias_exp)


def _conv_shapes(model: LoihiNetwork) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(input (C, H, W), output (C', H', W')) of each convolution of the chain."""
    shapes, shape = [], tuple(model.config.input_shape)
    for out_channels, kernel, stride, padding in model.config.convs:
        side = lambda n: (n + 2 * padding - kernel) // stride + 1  # noqa: E731
        out = (out_channels, side(shape[1]), side(shape[2]))
        shapes.append((shape, out))
        shape = out
    return shapes


def read_lava(path: str | Path, sense: str | None = None) -> tuple[int, list[ExportedLayer]]:
    """(input size, layers) from a netx-layout .h5 (read by `netx.read_netx`, the reader the Lava backend
    shares; `sense`: that sense's chain of a file of several); a one-line NeuromemError for anything else."""
    input_size, stored = read_netx(path, sense)
    layers = []
    for layer in stored:
        try:
            params = LoihiParameters(du=layer.du, dv=layer.dv, vth=layer.vth, bias_mant=layer.bias_mant,
                                     bias_exp=layer.bias_exp, weight_exp=layer.weight_exp)
        except ValueError as err:
            raise NeuromemError(f"{path}: layer {layer.key}: {err}") from None
        layers.append(ExportedLayer(
            weight=layer.weight, params=params, recurrent_weight=layer.recurrent_weight,
            recurrent_exp=layer.recurrent_exp, readout=layer.readout, conv=layer.conv, in_shape=layer.in_shape,
            delays=layer.delays, delay_window=layer.delay_window,
        ))
    return input_size, layers


def model_from_lava(path: str | Path, sense: str | None = None) -> LoihiNetwork:
    """Rebuild the torch model an .h5 describes (weights exactly as stored; `sense`: that sense's chain of a file
    of several) for `hw verify`."""
    input_size, layers = read_lava(path, sense)
    convs = [l for l in layers if l.conv is not None]
    if layers[: len(convs)] != convs:
        raise NeuromemError(f"{path}: a convolution follows a dense layer; neuromem's chains put convolutions first")
    dense = layers[len(convs):]
    hidden, readout = dense[:-1], dense[-1]
    for index, layer in enumerate(layers, start=1):
        if layer.weight.ndim < 2 or 0 in layer.weight.shape:
            raise NeuromemError(f"{path}: layer {index}'s weight is {tuple(layer.weight.shape)}; valid: at least one "
                                "neuron and one input")
        out = int(layer.weight.shape[0])
        if layer.recurrent_weight is not None and tuple(layer.recurrent_weight.shape) != (out, out):
            raise NeuromemError(f"{path}: layer {index}'s recurrentWeight is {tuple(layer.recurrent_weight.shape)}; "
                                f"its weight has {out} neurons, so valid: ({out}, {out})")
    if not convs and int(layers[0].weight.shape[1]) != input_size:
        raise NeuromemError(f"{path}: the input layer declares {input_size} inputs, but layer 1's weight takes "
                            f"{int(layers[0].weight.shape[1])}; valid: the same number")
    config = LoihiNetworkConfig(
        input_size=input_size,
        hidden_sizes=tuple(int(l.weight.shape[0]) for l in hidden),
        recurrent=tuple(l.recurrent_weight is not None for l in hidden),
        num_classes=int(readout.weight.shape[0]),
        hidden={},
        readout={},
        input_shape=convs[0].in_shape if convs else (input_size,),
        convs=tuple((int(l.weight.shape[0]), int(l.weight.shape[2]), *l.conv) for l in convs),
        delays=tuple(l.delay_window for l in hidden),
    )
    try:
        model = LoihiNetwork(config)
    except (ValueError, RuntimeError) as err:
        raise NeuromemError(f"{path}: inconsistent layer shapes or delays ({err})") from None
    if readout.delays is not None:
        raise NeuromemError(f"{path}: the readout layer has synaptic delays; neuromem's chains delay hidden layers only")
    for target, source in zip(model.layers, layers):
        expected = tuple(target.synapse.weight.shape)
        if tuple(source.weight.shape) != expected:
            raise NeuromemError(f"{path}: a layer's weight is {tuple(source.weight.shape)}, its place in the chain needs {expected}")
        target.parameters_ = source.params
        target.synapse.weight_exp = source.params.weight_exp
        if source.conv is None:
            target.recurrent_exp = source.recurrent_exp
        with torch.no_grad():
            # stored integers w = 2m are represented exactly by the float weight m / 128
            target.synapse.weight.copy_(torch.as_tensor(source.weight / 256.0))
            if source.recurrent_weight is not None:
                target.recurrent.copy_(torch.as_tensor(source.recurrent_weight / 256.0))
        weight = target.synapse.integer_weight().detach()
        recurrent = target.integer_weights()[1] if source.conv is None else None
        if not np.array_equal(weight.numpy(), source.weight) or (
            recurrent is not None and not np.array_equal(recurrent.detach().numpy(), source.recurrent_weight)
        ):
            raise NeuromemError(f"{path}: weights are not 8-bit mixed-sign Loihi weights (even integers in [-256, 254])")
        if source.delays is not None:
            if source.delays.shape != source.weight.shape:
                raise NeuromemError(f"{path}: synapseDelay is {source.delays.shape}, its weight {source.weight.shape}")
            target.synapse.set_delays(torch.as_tensor(source.delays))
            if not np.array_equal(target.synapse.integer_delays().numpy(), source.delays):
                raise NeuromemError(f"{path}: synapseDelay holds values outside 0..delayWindow-1 "
                                    f"(0..{source.delay_window - 1})")
    # record the layers' parameters in the config, so a checkpoint of the rebuilt model rebuilds it
    neuron_fields = ("du", "dv", "vth", "bias_mant", "bias_exp", "weight_exp")
    chain = [*convs, *hidden]
    if chain:
        model.config.hidden = {k: getattr(chain[0].params, k) for k in neuron_fields}
        if any(l.params != chain[0].params for l in chain):
            model.config.layer_neurons = tuple({k: getattr(l.params, k) for k in neuron_fields} for l in chain)
    model.config.readout = {k: getattr(readout.params, k) for k in neuron_fields}
    model.eval()
    return model


def data_record(path: str | Path) -> dict:
    """What `export_lava` recorded of the training data (neuromem_data), checked: {} when the file does not say;
    a one-line NeuromemError naming the file and what is valid when it says something else."""
    from neuromem.data.registry import dataset_names

    try:
        with h5py.File(path, "r") as handle:
            text = handle.attrs.get("neuromem_data", None)
    except OSError:
        return {}  # the reader names an unreadable file
    if text is None:
        return {}
    valid = ("valid: a JSON object with dataset (a data set name or null), time_bins (a positive integer or null), "
             "and optionally data_root, data_fingerprint (strings); re-export the cell")
    try:
        recorded = json.loads(text)
    except (TypeError, ValueError):
        raise NeuromemError(f"{path}: its neuromem_data attribute is not JSON; {valid}") from None
    if not isinstance(recorded, dict):
        raise NeuromemError(f"{path}: its neuromem_data attribute is a {type(recorded).__name__}; {valid}")
    dataset, bins = recorded.get("dataset"), recorded.get("time_bins")
    if dataset is not None and dataset not in dataset_names():
        raise NeuromemError(f"{path}: neuromem_data names data set {dataset!r}; valid data sets: {', '.join(dataset_names())}")
    if bins is not None and (isinstance(bins, bool) or not isinstance(bins, int) or bins < 1):
        raise NeuromemError(f"{path}: neuromem_data time_bins is {json.dumps(bins)}; {valid}")
    for key in ("data_root", "data_fingerprint"):
        if recorded.get(key) is not None and not isinstance(recorded[key], str):
            raise NeuromemError(f"{path}: neuromem_data {key} is {json.dumps(recorded[key])}; {valid}")
    return recorded


def data_of(path: str | Path) -> tuple[str | None, int | None]:
    """(data set, time bins) recorded by `export_lava`, (None, None) when the file does not say."""
    recorded = data_record(path)
    return recorded.get("dataset"), recorded.get("time_bins")


def senses_record(path: str | Path) -> dict | None:
    """What `export_lava` recorded of a cell of several senses (neuromem_senses: its senses, whether they share
    the memory, whether the readouts decide concepts), checked; None for a file of one chain."""
    from neuromem.data.registry import dataset_names

    try:
        with h5py.File(path, "r") as handle:
            text = handle.attrs.get("neuromem_senses", None)
    except OSError:
        return None  # the reader names an unreadable file
    if text is None:
        return None
    try:
        recorded = json.loads(text)
        senses = recorded["senses"]
    except (TypeError, ValueError, KeyError):
        raise NeuromemError(f"{path}: its neuromem_senses attribute is not a JSON object with 'senses'; re-export "
                            "the cell") from None
    if not isinstance(senses, list) or not senses or any(s not in dataset_names() for s in senses):
        raise NeuromemError(f"{path}: neuromem_senses names senses {senses!r}; valid: a list of data sets "
                            f"({', '.join(dataset_names())})")
    return recorded
