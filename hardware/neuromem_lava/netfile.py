"""Read the netx-layout HDF5 that neuromem writes (lava-dl netx conventions).

Conventions (lava-dl `netx/hdf5.py`, `netx/utils.py`): a root group `layer`
with sub-groups "0", "1", ...; each has `type` (b"input" / b"dense"), `shape`,
`weight` (out, in) integer synaptic weights, and a `neuron` group with `type`
b"CUBA", `iDecay` (= Lava LIF du + 1), `vDecay` (= dv), `vThMant` (= vth),
`refDelay`, `gradedSpike`. neuromem adds (ignored by netx): `weightExponent`,
`recurrentWeight`, `recurrentWeightExponent`, `neuron/biasMant`, `neuron/biasExp`,
and `conv` layers: `weight` (out, in, k, k), `inShape` (C, H, W), `shape` (C', H', W'),
`stride`, `padding`; they are run as the equivalent sparse matrix (`conv_matrix`); `synapseDelay`
(out, in) integer delays of a dense layer's synapses (with `delayWindow`), run as Lava's DelaySparse.
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
    weight: np.ndarray  # (out, in) int32: dense, or a scipy csr matrix for a convolution
    weight_exp: int
    du: int
    dv: int
    vth: int
    bias_mant: int
    bias_exp: int
    recurrent_weight: Optional[np.ndarray]
    recurrent_exp: int
    delays: Optional[np.ndarray] = None  # (out, in) int synaptic delays (steps beyond the Dense's own one)

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


def conv_matrix(kernel: np.ndarray, in_shape: tuple, stride: int, padding: int):
    """A zero-padded strided convolution as a csr matrix (out C'*H'*W', in C*H*W), both flattened in
    (C, H, W) order: row (o, y, x) holds kernel[o, c, ky, kx] at column (c, y*stride - padding + ky, ...)."""
    from scipy.sparse import csr_matrix

    out_channels, in_channels, k, _ = kernel.shape
    channels, height, width = in_shape
    if channels != in_channels:
        raise NetFileError(f"a conv layer's kernel takes {in_channels} channels, its input has {channels}")
    out_h, out_w = (height + 2 * padding - k) // stride + 1, (width + 2 * padding - k) // stride + 1
    o, c, ky, kx, y, x = np.meshgrid(np.arange(out_channels), np.arange(in_channels), np.arange(k), np.arange(k),
                                     np.arange(out_h), np.arange(out_w), indexing="ij")
    iy, ix = y * stride - padding + ky, x * stride - padding + kx
    inside = (iy >= 0) & (iy < height) & (ix >= 0) & (ix < width)
    rows = ((o * out_h + y) * out_w + x)[inside]
    cols = ((c * height + iy) * width + ix)[inside]
    values = kernel[o, c, ky, kx][inside]
    keep = values != 0
    matrix = csr_matrix((values[keep].astype(np.int32), (rows[keep], cols[keep])),
                        shape=(out_channels * out_h * out_w, channels * height * width))
    matrix.sum_duplicates()
    return matrix


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
            if kind not in ("dense", "conv"):
                raise NetFileError(f"{path}: layer {key} has type '{kind}'; this backend runs 'input', 'conv' and 'dense' layers")
            neuron = group["neuron"]
            neuron_type = _text(neuron["type"])
            if neuron_type not in ("CUBA", "LOIHI"):
                raise NetFileError(f"{path}: layer {key} neuron type '{neuron_type}'; this backend runs CUBA")
            weight = np.asarray(group["weight"][()]).astype(np.int64)
            if kind == "conv":
                in_shape = tuple(int(d) for d in np.asarray(group["inShape"][()]))
                weight = conv_matrix(weight, in_shape, _int(group, "stride"), _int(group, "padding"))
            recurrent = np.asarray(group["recurrentWeight"][()]).astype(np.int64) if "recurrentWeight" in group else None
            delays = np.asarray(group["synapseDelay"][()]).astype(np.int64) if "synapseDelay" in group else None
            if delays is not None and (kind == "conv" or delays.shape != weight.shape or delays.min(initial=0) < 0
                                       or delays.max(initial=0) > 63):
                raise NetFileError(f"{path}: layer {key}: synapseDelay must be (out, in) integers in 0..63 beside a "
                                   "dense weight (Loihi 2 delays are 6-bit)")
            bias_mant = _int(neuron, "biasMant", 0)
            bias_exp = _int(neuron, "biasExp", 0)
            if "bias" in group and "biasMant" not in neuron:  # netx convention: bias exponent 6
                bias_mant, bias_exp = int(np.asarray(group["bias"][()]).reshape(-1)[0]), 6
            layers.append(
                DenseLayer(
                    index=len(layers),
                    weight=weight.astype(np.int32) if isinstance(weight, np.ndarray) else weight,
                    weight_exp=_int(group, "weightExponent", 0),
                    du=_int(neuron, "iDecay") - 1,
                    dv=_int(neuron, "vDecay"),
                    vth=_int(neuron, "vThMant"),
                    bias_mant=bias_mant,
                    bias_exp=bias_exp,
                    recurrent_weight=None if recurrent is None else recurrent.astype(np.int32),
                    recurrent_exp=_int(group, "recurrentWeightExponent", 0),
                    delays=delays,
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
