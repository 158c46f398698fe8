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

FORMAT = "lava-dl-netx-hdf5"


@dataclass
class ExportedLayer:
    weight: np.ndarray  # (out, in) int
    params: LoihiParameters
    recurrent_weight: np.ndarray | None
    recurrent_exp: int
    readout: bool


def _int_array(tensor: torch.Tensor) -> np.ndarray:
    array = tensor.detach().cpu().numpy()
    rounded = np.rint(array)
    if not np.array_equal(array, rounded):
        raise ValueError("quantized weights are not integers")
    return rounded.astype(np.int32)


def export_lava(model: LoihiNetwork, path: str | Path) -> Path:
    """Write `model` (quantized as in eval) to `path` (.h5)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.attrs["format"] = FORMAT
        handle.attrs["producer"] = f"neuromem {neuromem.__version__}"
        handle.attrs["decision"] = "argmax of the last layer's voltage at the final time step"
        handle.attrs["synaptic_delay"] = "one time step per Dense, as Lava's Dense process"
        handle.attrs["neuromem_config"] = json.dumps(asdict(model.config))
        layers = handle.create_group("layer")
        first = layers.create_group("0")
        first.create_dataset("type", (1,), "S10", [b"input"])
        first.create_dataset("shape", data=np.array([model.config.input_size]))
        for index, layer in enumerate(model.layers, start=1):
            group = layers.create_group(str(index))
            weight, recurrent = layer.integer_weights()
            p = layer.neuron
            group.create_dataset("type", (1,), "S10", [b"dense"])
            group.create_dataset("shape", data=np.array([layer.out_features]))
            group.create_dataset("inFeatures", data=layer.in_features)
            group.create_dataset("outFeatures", data=layer.out_features)
            group.create_dataset("weight", data=_int_array(weight))
            group.create_dataset("weightExponent", data=p.weight_exp)
            if recurrent is not None:
                group.create_dataset("recurrentWeight", data=_int_array(recurrent))
                group.create_dataset("recurrentWeightExponent", data=layer.recurrent_exp)
            group.attrs["readout"] = layer is model.readout
            neuron = group.create_group("neuron")
            neuron.create_dataset("type", (1,), "S10", [b"CUBA"])
            neuron.create_dataset("iDecay", data=p.du + 1)
            neuron.create_dataset("vDecay", data=p.dv)
            neuron.create_dataset("vThMant", data=p.vth)
            neuron.create_dataset("refDelay", data=1)
            neuron.create_dataset("gradedSpike", data=False)
            neuron.create_dataset("biasMant", data=p.bias_mant)
            neuron.create_dataset("biasExp", data=p.bias_exp)
            if p.bias_exp == 6 and p.bias_mant:
                group.create_dataset("bias", data=np.full(layer.out_features, p.bias_mant))
    return path


def _scalar(group: h5py.Group, key: str, path: Path, default: int | None = None) -> int:
    if key not in group:
        if default is not None:
            return default
        raise NeuromemError(f"{path}: layer {group.name} lacks '{key}'; not a netx network description")
    return int(np.asarray(group[key][()]).reshape(-1)[0])


def _text(dataset) -> str:
    value = dataset[()]
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def read_lava(path: str | Path) -> tuple[int, list[ExportedLayer]]:
    """(input size, layers) from a netx-layout .h5; a one-line NeuromemError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise NeuromemError(f"network file {path} does not exist")
    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise NeuromemError(
            f"{path}: not a readable HDF5 file (truncated or corrupt?); re-export it with `neuromem export --to lava`"
        ) from None
    try:
        with handle:
            if "layer" not in handle:
                raise NeuromemError(f"{path}: no 'layer' group, so not a netx network description")
            groups = handle["layer"]
            input_size, layers = None, []
            for key in sorted(groups.keys(), key=lambda k: int(k) if k.isdigit() else -1):
                group = groups[key]
                kind = _text(group["type"]) if "type" in group else "<missing>"
                if kind == "input":
                    input_size = int(np.prod(group["shape"][()]))
                    continue
                if kind != "dense":
                    raise NeuromemError(f"{path}: layer {key} is '{kind}'; neuromem's Loihi backend runs 'input' and 'dense' layers")
                neuron = group["neuron"]
                neuron_type = _text(neuron["type"])
                if neuron_type not in ("CUBA", "LOIHI"):
                    raise NeuromemError(f"{path}: layer {key} neuron type '{neuron_type}'; supported: CUBA")
                bias_mant, bias_exp = _scalar(neuron, "biasMant", path, 0), _scalar(neuron, "biasExp", path, 0)
                if "bias" in group and "biasMant" not in neuron:
                    bias_mant, bias_exp = int(np.asarray(group["bias"][()]).reshape(-1)[0]), 6
                try:
                    params = LoihiParameters(
                        du=_scalar(neuron, "iDecay", path) - 1,
                        dv=_scalar(neuron, "vDecay", path),
                        vth=_scalar(neuron, "vThMant", path),
                        bias_mant=bias_mant,
                        bias_exp=bias_exp,
                        weight_exp=_scalar(group, "weightExponent", path, 0),
                    )
                except ValueError as err:
                    raise NeuromemError(f"{path}: layer {key}: {err}") from None
                recurrent = np.asarray(group["recurrentWeight"][()]) if "recurrentWeight" in group else None
                layers.append(
                    ExportedLayer(
                        weight=np.asarray(group["weight"][()]).astype(np.int64),
                        params=params,
                        recurrent_weight=None if recurrent is None else recurrent.astype(np.int64),
                        recurrent_exp=_scalar(group, "recurrentWeightExponent", path, 0),
                        readout=bool(group.attrs.get("readout", False)),
                    )
                )
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise NeuromemError(f"{path}: damaged network description ({type(err).__name__}: {err})") from None
    if not layers:
        raise NeuromemError(f"{path}: no dense layers")
    return input_size if input_size is not None else int(layers[0].weight.shape[1]), layers


def model_from_lava(path: str | Path) -> LoihiNetwork:
    """Rebuild the torch model an .h5 describes (weights exactly as stored) for `hw verify`."""
    input_size, layers = read_lava(path)
    hidden, readout = layers[:-1], layers[-1]
    config = LoihiNetworkConfig(
        input_size=input_size,
        hidden_sizes=tuple(int(l.weight.shape[0]) for l in hidden),
        recurrent=tuple(l.recurrent_weight is not None for l in hidden),
        num_classes=int(readout.weight.shape[0]),
        hidden={},
        readout={},
    )
    model = LoihiNetwork(config)
    previous = input_size
    for target, source in zip(model.layers, layers):
        if source.weight.shape[1] != previous:
            raise NeuromemError(f"{path}: a layer expects {source.weight.shape[1]} inputs but gets {previous}")
        previous = source.weight.shape[0]
        target.parameters_ = source.params
        target.synapse.weight_exp = source.params.weight_exp
        target.recurrent_exp = source.recurrent_exp
        with torch.no_grad():
            # stored integers w = 2m are represented exactly by the float weight m / 128
            target.synapse.weight.copy_(torch.as_tensor(source.weight / 256.0))
            if source.recurrent_weight is not None:
                target.recurrent.copy_(torch.as_tensor(source.recurrent_weight / 256.0))
        weight, recurrent = (w.detach() if w is not None else None for w in target.integer_weights())
        if not np.array_equal(weight.numpy(), source.weight) or (
            recurrent is not None and not np.array_equal(recurrent.numpy(), source.recurrent_weight)
        ):
            raise NeuromemError(f"{path}: weights are not 8-bit mixed-sign Loihi weights (even integers in [-256, 254])")
    # record the layers' parameters in the config, so a checkpoint of the rebuilt model rebuilds it
    neuron_fields = ("du", "dv", "vth", "bias_mant", "bias_exp", "weight_exp")
    if hidden and all(l.params == hidden[0].params for l in hidden):
        model.config.hidden = {k: getattr(hidden[0].params, k) for k in neuron_fields}
    model.config.readout = {k: getattr(readout.params, k) for k in neuron_fields}
    model.eval()
    return model
