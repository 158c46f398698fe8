"""Read the netx-layout HDF5 that neuromem writes (lava-dl netx conventions).

Conventions (lava-dl `netx/hdf5.py`, `netx/utils.py`): a root group `layer`
with sub-groups "0", "1", ...; each has `type` (b"input" / b"dense"), `shape`,
`weight` (out, in) integer synaptic weights, and a `neuron` group with `type`
b"CUBA", `iDecay` (= Lava LIF du + 1), `vDecay` (= dv), `vThMant` (= vth),
`refDelay`, `gradedSpike`. neuromem adds (ignored by netx): `weightExponent`,
`recurrentWeight`, `recurrentWeightExponent`, `neuron/biasMant`, `neuron/biasExp`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import h5py
import numpy as np


class NetFileError(Exception):
    """The file is not a readable network description; the message says why."""


@dataclass
class DenseLayer:
    index: int
    weight: np.ndarray  # (out, in) int32
    weight_exp: int
    du: int
    dv: int
    vth: int
    bias_mant: int
    bias_exp: int
    recurrent_weight: Optional[np.ndarray]
    recurrent_exp: int

    @property
    def size(self) -> int:
        return int(self.weight.shape[0])


def _text(dataset) -> str:
    value = dataset[()]
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _int(group, key, default=None) -> int:
    if key not in group:
        if default is None:
            raise NetFileError(f"layer {group.name} lacks '{key}'")
        return default
    return int(np.asarray(group[key][()]).reshape(-1)[0])


def read_network(path: str) -> tuple[int, list[DenseLayer]]:
    """(input size, dense layers in order)."""
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise NetFileError(f"{path}: not a readable HDF5 file ({err})") from None
    with handle:
        if "layer" not in handle:
            raise NetFileError(f"{path}: no 'layer' group (not a netx network description)")
        groups = handle["layer"]
        order = sorted(groups.keys(), key=lambda k: int(k) if k.isdigit() else -1)
        input_size, layers = None, []
        for key in order:
            group = groups[key]
            kind = _text(group["type"]) if "type" in group else "?"
            if kind == "input":
                input_size = int(np.prod(group["shape"][()]))
                continue
            if kind != "dense":
                raise NetFileError(f"{path}: layer {key} has type '{kind}'; this backend runs 'input' and 'dense' layers")
            neuron = group["neuron"]
            neuron_type = _text(neuron["type"])
            if neuron_type not in ("CUBA", "LOIHI"):
                raise NetFileError(f"{path}: layer {key} neuron type '{neuron_type}'; this backend runs CUBA")
            weight = np.asarray(group["weight"][()]).astype(np.int64)
            recurrent = np.asarray(group["recurrentWeight"][()]).astype(np.int64) if "recurrentWeight" in group else None
            bias_mant = _int(neuron, "biasMant", 0)
            bias_exp = _int(neuron, "biasExp", 0)
            if "bias" in group and "biasMant" not in neuron:  # netx convention: bias exponent 6
                bias_mant, bias_exp = int(np.asarray(group["bias"][()]).reshape(-1)[0]), 6
            layers.append(
                DenseLayer(
                    index=len(layers),
                    weight=weight.astype(np.int32),
                    weight_exp=_int(group, "weightExponent", 0),
                    du=_int(neuron, "iDecay") - 1,
                    dv=_int(neuron, "vDecay"),
                    vth=_int(neuron, "vThMant"),
                    bias_mant=bias_mant,
                    bias_exp=bias_exp,
                    recurrent_weight=None if recurrent is None else recurrent.astype(np.int32),
                    recurrent_exp=_int(group, "recurrentWeightExponent", 0),
                )
            )
    if not layers:
        raise NetFileError(f"{path}: no dense layers")
    if input_size is None:
        input_size = int(layers[0].weight.shape[1])
    previous = input_size
    for layer in layers:
        if layer.weight.shape[1] != previous:
            raise NetFileError(f"{path}: layer {layer.index} expects {layer.weight.shape[1]} inputs, gets {previous}")
        if layer.recurrent_weight is not None and layer.recurrent_weight.shape != (layer.size, layer.size):
            raise NetFileError(f"{path}: layer {layer.index} recurrent weight is not ({layer.size}, {layer.size})")
        previous = layer.size
    return input_size, layers
