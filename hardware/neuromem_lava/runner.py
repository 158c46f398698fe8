"""Build Lava processes for a network description and run samples on Loihi2SimCfg(select_tag='fixed_pt').

Per layer: `lava.proc.sparse.Sparse` (integer weights, shared `weight_exp`, mixed sign mode)
into a `lava.proc.lif` neuron (du, dv, vth, bias); a recurrent layer adds a second Sparse
from the neurons' spikes back to their own input; a convolution is its equivalent sparse
matrix. A layer with synaptic delays takes a `DelaySparse` instead (its delays beside the
weights, same sparsity): a spike sent at step t over delay d reaches the neurons at t + 1 + d;
its model is Lava's bit-accurate one with the per-delay weight stack built once (`delay_model.py`).
Input spikes come from `lava.proc.io.source.RingBuffer`.

Recording: every layer's spikes leave through a `lava.proc.io.extractor.Extractor` and the
readout voltage through a `VarWire` (read after every step), both one whole array per step
through a channel to this process, read while Lava runs. (Reading a Var with `get()`, as
sink RingBuffers and Monitors need, moves one value per message through two channels;
for a whole cell that was nearly all of the run's time.)

Several samples per run: `parallel` copies of the network side by side in the same
processes (block-diagonal weights: each copy's neurons see only their own copy's inputs,
so every copy computes exactly what a lone network would), fed `parallel` samples at
once. Groups of samples follow one another in the same run, T steps each, and every
sample starts from rest as the torch model does: the neurons are `LIFReset`, which
zero u and v at the first step of each group, and a `lava.proc.io.reset.Reset` per
synapse zeroes its a_buff (the spikes of a group's last step, still in flight) after
that step.
"""

from __future__ import annotations

import os
import time

import numpy as np

from neuromem_lava.netfile import DenseLayer

PIPE_STEPS = 64  # steps a recording channel buffers ahead of the reader


def block_diagonal(weight, copies: int, dtype=np.int32):
    """`copies` copies of a (out, in) weight matrix on the diagonal, as a csr matrix (int32 by default)."""
    from scipy.sparse import csr_matrix

    single = csr_matrix(weight, dtype=dtype)
    single.eliminate_zeros()
    rows, cols = single.shape
    nnz = single.nnz
    offsets = np.arange(copies, dtype=np.int64)
    indptr = (single.indptr[None, 1:].astype(np.int64) + nnz * offsets[:, None]).reshape(-1)
    indices = (single.indices[None, :].astype(np.int64) + cols * offsets[:, None]).reshape(-1)
    data = np.tile(single.data, copies)
    index_type = np.int32 if max(nnz * copies, cols * copies) < 2**31 else np.int64
    return csr_matrix((data, indices.astype(index_type), np.concatenate([[0], indptr]).astype(index_type)),
                      shape=(rows * copies, cols * copies))


def run_network(
    input_size: int,
    layers: list[DenseLayer],
    spikes: np.ndarray,
    record_voltages: bool = False,
    parallel: int = 1,
) -> dict[str, np.ndarray]:
    """spikes (S, T, input_size) binary -> {"spikes_<i>": (S, T, N_i), "final_voltage": (S, N_last), ...}."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel, PyLoihiVarWireModel, VarWire
    from lava.proc.io.reset import Reset
    from lava.proc.io.source import RingBuffer as SpikeSource
    from lava.proc.lif.process import LIF, LIFReset
    from lava.proc.sparse.process import DelaySparse, Sparse
    from lava.utils.weightutils import SignMode

    samples, steps = spikes.shape[:2]
    spikes = spikes.reshape(samples, steps, -1)
    if spikes.shape[2] != input_size:
        raise ValueError(f"inputs have {spikes.shape[2]} channels, the network expects {input_size}")
    copies = max(1, min(int(parallel), samples))
    groups = -(-samples // copies)
    padded = np.zeros((groups * copies, steps, input_size), dtype=np.int32)
    padded[:samples] = spikes > 0
    # (groups, copies, T, C) -> columns: time step g*T + t, rows: copy-major channels
    data = padded.reshape(groups, copies, steps, input_size).transpose(0, 2, 1, 3).reshape(groups * steps, copies * input_size).T
    total = groups * steps
    pipe = min(total, PIPE_STEPS)
    started = time.perf_counter()
    source = SpikeSource(data=np.ascontiguousarray(data))
    previous = source.s_out
    synapses, neurons, recorders = [], [], []
    for layer in layers:
        size = layer.size * copies
        weights = block_diagonal(layer.weight, copies)
        if layer.delays is None:
            synapse = Sparse(weights=weights, weight_exp=layer.weight_exp, num_weight_bits=8, sign_mode=SignMode.MIXED)
        else:
            # delays only where a synapse is (zero weights dropped from both); an absent entry is delay 0
            delays = block_diagonal(np.where(np.asarray(layer.weight) != 0, layer.delays, 0), copies, dtype=np.int64)
            synapse = DelaySparse(weights=weights, delays=delays, max_delay=max(int(layer.delays.max(initial=0)), 1),
                                  weight_exp=layer.weight_exp, num_weight_bits=8, sign_mode=SignMode.MIXED)
        parameters = dict(shape=(size,), du=layer.du, dv=layer.dv, vth=layer.vth,
                          bias_mant=np.full(size, layer.bias_mant), bias_exp=np.full(size, layer.bias_exp))
        # time steps count from 1: the first step of every group is a multiple of T plus 1
        neuron = LIFReset(reset_interval=steps, reset_offset=1, **parameters) if groups > 1 else LIF(**parameters)
        previous.connect(synapse.s_in)
        synapse.a_out.connect(neuron.a_in)
        synapses.append(synapse)
        if layer.recurrent_weight is not None:
            recurrent = Sparse(weights=block_diagonal(layer.recurrent_weight, copies), weight_exp=layer.recurrent_exp,
                               num_weight_bits=8, sign_mode=SignMode.MIXED)
            neuron.s_out.connect(recurrent.s_in)
            recurrent.a_out.connect(neuron.a_in)
            synapses.append(recurrent)
        recorder = Extractor(shape=(size,), buffer_size=pipe)
        neuron.s_out.connect(recorder.in_port)
        neurons.append(neuron)
        recorders.append(recorder)
        previous = neuron.s_out
    resets = []
    if groups > 1:
        for synapse in synapses:
            # Reset's post-management runs after steps where (time_step - 1) % T == offset: each group's last step
            reset = Reset(reset_value=0, interval=steps, offset=steps - 1)
            reset.connect_var(synapse.a_buff)
            resets.append(reset)
    voltage = VarWire(buffer_size=pipe)
    voltage.connect_var(neurons[-1].v)

    outputs = layers[-1].size
    rasters = [np.empty((total, layer.size * copies), dtype=np.uint8) for layer in layers]
    trace = np.empty((total, outputs * copies), dtype=np.int64)
    # the recorders' models carry no tag, so select_tag alone finds none for them
    models = {Extractor: PyLoihiExtractorModel, VarWire: PyLoihiVarWireModel}
    if os.environ.get("NEUROMEM_LAVA_STOCK_DELAYS") != "1":
        from neuromem_lava.delay_model import PyDelaySparseModelBitAccStatic

        models[DelaySparse] = PyDelaySparseModelBitAccStatic  # Lava's, its delay-weight stack built once
    run_cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models)
    try:
        neurons[0].run(condition=RunSteps(num_steps=total, blocking=False), run_cfg=run_cfg)
        for step in range(total):
            for raster, recorder in zip(rasters, recorders):
                raster[step] = recorder.receive()
            trace[step] = voltage.receive()
        neurons[0].wait()
    finally:
        neurons[0].stop()
    seconds = time.perf_counter() - started

    def per_sample(array: np.ndarray, width: int) -> np.ndarray:
        """(total, copies*width) -> (samples, T, width)."""
        blocks = array.reshape(groups, steps, copies, width).transpose(0, 2, 1, 3)
        return np.ascontiguousarray(blocks.reshape(groups * copies, steps, width)[:samples])

    results = {f"spikes_{i}": per_sample(raster, layer.size) for i, (raster, layer) in enumerate(zip(rasters, layers))}
    voltages = per_sample(trace, outputs)
    if record_voltages:
        results["voltages"] = voltages
    results["final_voltage"] = voltages[:, -1].copy()
    results["seconds"] = np.array(seconds)
    return results
