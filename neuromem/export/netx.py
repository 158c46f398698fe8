"""Read the netx-layout HDF5 that `neuromem export --to lava` writes: the one reader of both sides.

neuromem (`export/lava.py`: `read_lava`, `model_from_lava`, `hw verify`) and its Lava backend
(`hardware/neuromem_lava/netfile.py`, Python 3.10 with lava-nc, no torch) read a network file through
`read_netx`. So this module imports nothing but numpy, h5py and neuromem's import-light `errors` and
`bounds` (the package's `__init__` files import nothing heavy either); `tests/test_export.py` checks it.

Layout (lava-dl `netx/hdf5.py`, `slayer/block/base.py::export_hdf5`): a root group `layer` with
sub-groups "0", "1", ...; each has `type` (b"input" / b"dense" / b"conv"), `shape`, `weight` ((out, in)
integer synaptic weights; (out, in, k, k) for a convolution) and a `neuron` group with `type` b"CUBA",
`iDecay` (= Lava LIF du + 1), `vDecay` (= dv), `vThMant` (= vth), `refDelay`, `gradedSpike`. neuromem adds
(netx ignores them): `weightExponent`, `recurrentWeight`, `recurrentWeightExponent`, `neuron/biasMant`,
`neuron/biasExp`, a convolution's `inShape` (C, H, W), `stride`, `padding`, a dense layer's learned
`synapseDelay` (out, in) with `delayWindow`, and the `readout` attribute of the last layer. A cell of
several senses (joint, parallel) holds one such chain per sense under `sense/<name>` (netx's one `layer` group
is one chain from one input); `read_netx(path, sense)` reads one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import h5py
import numpy as np

from neuromem.errors import NeuromemError

MAX_ARRAY_BYTES = 2 * 1024**3
MAX_INPUTS = 1 << 20  # inputs of one network: far beyond any data set neuromem reads (N-MNIST: 2 x 34 x 34)
LAYER_KINDS = ("dense", "conv")


class NetxError(NeuromemError):
    """The file is not a network description neuromem can run; the one-line message names the file and why."""


@dataclass
class NetxLayer:
    """One layer of the file as stored: integer arrays (int64) and the Loihi neuron's integer parameters."""

    kind: str  # "dense" or "conv"
    weight: np.ndarray  # (out, in), or (out, in, k, k) for a convolution
    du: int
    dv: int
    vth: int
    bias_mant: int
    bias_exp: int
    weight_exp: int
    recurrent_weight: Optional[np.ndarray]  # (out, out) or None
    recurrent_exp: int
    readout: bool
    conv: Optional[Tuple[int, int]] = None  # (stride, padding) of a convolution
    in_shape: Tuple[int, ...] = ()  # a convolution's input (C, H, W)
    delays: Optional[np.ndarray] = None  # (out, in) integer synaptic delays, steps beyond the Dense's own one
    delay_window: int = 0  # D: delays 0..D-1
    key: str = ""  # the layer's group name in the file, for messages


def _scalar(group: h5py.Group, key: str, path: Path, default: Optional[int] = None) -> int:
    if key not in group:
        if default is not None:
            return default
        raise NetxError(f"{path}: layer {group.name} lacks '{key}'; not a netx network description")
    value = np.asarray(group[key][()]).reshape(-1)
    if value.size == 0 or value.dtype.kind not in "iuf" or not np.isfinite(value[0]) or value[0] != np.floor(value[0]):
        raise NetxError(f"{path}: {group.name.strip('/')}/{key} is {value[0] if value.size else 'empty'} "
                        f"({value.dtype}); valid: an integer")
    return int(value[0])


def _text(dataset) -> str:
    value = dataset[()]
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _check_declared(path: Path, key: str, group, name: str) -> None:
    """A dataset's declared size, before it is read: within the memory limit (int64 once read)."""
    if name not in group:
        return
    dataset = group[name]
    if not isinstance(dataset, h5py.Dataset):
        raise NetxError(f"{path}: layer {key}'s {name} is a group; valid: an array")
    if dataset.dtype.kind not in "iuf":
        raise NetxError(f"{path}: layer {key}'s {name} is of type {dataset.dtype}; valid: an array of integers")
    from neuromem.bounds import human, memory_limit

    limit, source = memory_limit()
    if limit > MAX_ARRAY_BYTES:  # a network file's arrays: at most 2 GiB each (a Loihi 2 chip holds 120M synapses)
        limit, source = MAX_ARRAY_BYTES, "2 GiB per array of a network file"
    if dataset.size * 8 > limit:
        raise NetxError(f"{path}: layer {key}'s {name} declares shape {dataset.shape} ({human(dataset.size * 8)} "
                        f"once read); the limit is {human(limit)} ({source})")


def _conv_in_shape(path: Path, key: str, group) -> Tuple[int, ...]:
    _check_declared(path, key, group, "inShape")
    shape = tuple(int(d) for d in np.asarray(group["inShape"][()]).reshape(-1))
    if len(shape) != 3 or min(shape) < 1 or int(np.prod(shape, dtype=object)) > MAX_INPUTS:
        raise NetxError(f"{path}: layer {key} declares inShape {list(shape)}; valid: (channels, height, width), "
                        f"positive, at most {MAX_INPUTS} inputs in all")
    return shape


def _layer(path: Path, key: str, group, kind: str) -> NetxLayer:
    neuron = group["neuron"]
    neuron_type = _text(neuron["type"])
    if neuron_type not in ("CUBA", "LOIHI"):
        raise NetxError(f"{path}: layer {key} neuron type '{neuron_type}'; supported: CUBA")
    bias_mant, bias_exp = _scalar(neuron, "biasMant", path, 0), _scalar(neuron, "biasExp", path, 0)
    if "bias" in group and "biasMant" not in neuron:  # netx convention: bias exponent 6
        bias_mant, bias_exp = int(np.asarray(group["bias"][()]).reshape(-1)[0]), 6
    for name in ("weight", "recurrentWeight", "synapseDelay"):
        _check_declared(path, key, group, name)
    recurrent = np.asarray(group["recurrentWeight"][()]).astype(np.int64) if "recurrentWeight" in group else None
    delays = np.asarray(group["synapseDelay"][()]).astype(np.int64) if "synapseDelay" in group else None
    if delays is not None and kind == "conv":
        raise NetxError(f"{path}: layer {key} is a convolution with synaptic delays; neuromem delays dense layers only")
    return NetxLayer(
        kind=kind,
        weight=np.asarray(group["weight"][()]).astype(np.int64),
        du=_scalar(neuron, "iDecay", path) - 1,
        dv=_scalar(neuron, "vDecay", path),
        vth=_scalar(neuron, "vThMant", path),
        bias_mant=bias_mant,
        bias_exp=bias_exp,
        weight_exp=_scalar(group, "weightExponent", path, 0),
        recurrent_weight=recurrent,
        recurrent_exp=_scalar(group, "recurrentWeightExponent", path, 0),
        readout=bool(group.attrs.get("readout", False)),
        conv=(_scalar(group, "stride", path), _scalar(group, "padding", path)) if kind == "conv" else None,
        in_shape=_conv_in_shape(path, key, group) if kind == "conv" else (),
        delays=delays,
        delay_window=(_scalar(group, "delayWindow", path, int(delays.max(initial=0)) + 1) if delays is not None else 0),
        key=key,
    )


def read_netx(path, sense: Optional[str] = None) -> Tuple[int, list]:
    """(input size, layers in order) of a netx-layout .h5; a one-line NetxError for anything else. A file of
    several senses holds each sense's chain in `sense/<name>` (netx's layout below it): `sense` names which."""
    path = Path(path)
    if not path.is_file():
        raise NetxError(f"network file {path} does not exist")
    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise NetxError(
            f"{path}: not a readable HDF5 file (truncated or corrupt?); re-export it with `neuromem export --to lava`"
        ) from None
    try:
        with handle:
            held = sorted(handle["sense"].keys()) if isinstance(handle.get("sense"), h5py.Group) else []
            if sense is not None and sense not in held:
                raise NetxError(f"{path}: no chain of sense {sense!r}; "
                                + (f"its senses: {', '.join(held)}" if held else "it holds one chain: give no sense"))
            if sense is None and held:
                raise NetxError(f"{path} holds one chain per sense ({', '.join(held)}); name one")
            root = handle["sense"][sense] if sense is not None else handle
            if "layer" not in root:
                raise NetxError(f"{path}: no 'layer' group, so not a netx network description")
            groups = root["layer"]
            input_size, layers = None, []
            for key in sorted(groups.keys(), key=lambda k: int(k) if k.isdigit() else -1):
                group = groups[key]
                kind = _text(group["type"]) if "type" in group else "<missing>"
                if kind == "input":
                    _check_declared(path, key, group, "shape")
                    input_shape = tuple(int(d) for d in np.asarray(group["shape"][()]).reshape(-1))
                    input_size = int(np.prod(input_shape, dtype=object))
                    if not input_shape or min(input_shape) < 1 or input_size > MAX_INPUTS:
                        raise NetxError(f"{path}: the input layer declares shape {list(input_shape)}; valid: "
                                        f"positive sizes, at most {MAX_INPUTS} inputs in all")
                    continue
                if kind not in LAYER_KINDS:
                    raise NetxError(f"{path}: layer {key} is '{kind}'; neuromem's Loihi backend runs 'input', 'conv' "
                                    "and 'dense' layers")
                layers.append(_layer(path, key, group, kind))
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise NetxError(f"{path}: damaged network description ({type(err).__name__}: {err})") from None
    if not layers:
        raise NetxError(f"{path}: no dense layers")
    return input_size if input_size is not None else int(layers[0].weight.shape[1]), layers
