"""The network file as Lava's processes take it: neuromem's netx reader (`neuromem/export/netx.py`, shared
with the exporter, numpy and h5py only) and the Lava side's own forms on top of it.

A convolution is run as the equivalent sparse matrix (`conv_matrix`); a dense layer's `synapseDelay` (out, in)
integer delays as Lava's DelaySparse (Loihi 2 delays are 6-bit: 0..63). The layout is described in
`neuromem/export/netx.py`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

try:  # neuromem's source tree holds this package (hardware/): its reader is two folders up
    from neuromem.export.netx import NetxError, read_netx
except ModuleNotFoundError:  # pragma: no cover - a run without the bridge's PYTHONPATH
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from neuromem.export.netx import NetxError, read_netx

NetFileError = NetxError  # the one-line errors `python -m neuromem_lava` prints


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


def read_network(path: str, sense: Optional[str] = None) -> tuple[int, list[DenseLayer]]:
    """(input size, layers in order, a convolution as its sparse matrix); `sense`: that sense's chain of a file of
    several (a joint or parallel cell)."""
    input_size, stored = read_netx(path, sense)
    layers = []
    for layer in stored:
        weight = layer.weight
        if layer.kind == "conv":
            weight = conv_matrix(weight, layer.in_shape, *layer.conv)
        delays = layer.delays
        if delays is not None and (delays.shape != weight.shape or delays.min(initial=0) < 0
                                   or delays.max(initial=0) > 63):
            raise NetFileError(f"{path}: layer {layer.key}: synapseDelay must be (out, in) integers in 0..63 beside "
                               "a dense weight (Loihi 2 delays are 6-bit)")
        layers.append(
            DenseLayer(
                index=len(layers),
                weight=weight.astype(np.int32) if isinstance(weight, np.ndarray) else weight,
                weight_exp=layer.weight_exp,
                du=layer.du,
                dv=layer.dv,
                vth=layer.vth,
                bias_mant=layer.bias_mant,
                bias_exp=layer.bias_exp,
                recurrent_weight=None if layer.recurrent_weight is None else layer.recurrent_weight.astype(np.int32),
                recurrent_exp=layer.recurrent_exp,
                delays=delays,
            )
        )
    previous = input_size
    for layer in layers:
        if layer.weight.shape[1] != previous:
            raise NetFileError(f"{path}: layer {layer.index} expects {layer.weight.shape[1]} inputs, gets {previous}")
        if layer.recurrent_weight is not None and layer.recurrent_weight.shape != (layer.size, layer.size):
            raise NetFileError(f"{path}: layer {layer.index} recurrent weight is not ({layer.size}, {layer.size})")
        previous = layer.size
    return input_size, layers
