"""NIR graphs written by snnTorch's and Norse's own exporters, imported as neuromem cells.

Trains a Linear -> LIF -> Linear -> LIF network on a data set's training split in snnTorch and in Norse
(surrogate gradients, cross-entropy on output spike counts), evaluates it there (the output neuron that fired
most), writes it with the peer's own NIR exporter (`snntorch.export_nir.export_to_nir`, `norse.torch.to_nir`),
imports the file with `neuromem import` (`neuromem.export.nir.cell.import_cell`) and compares the test
accuracy and the per-sample decisions.

    python -m benchmarks.nir_peers --out /tmp/nir-peers [--data-root ROOT] [--epochs 2] [--hidden 128]

snnTorch's neurons reset to zero without delay (`reset_mechanism="zero", reset_delay=False`), NIR's reset:
its default subtract reset has no NIR form (its own exporter writes a nir.LIF either way). Norse 1.1.0's
`to_nir` writes tau = dt / tau_mem_inv, so its graph is imported with --dt 1e-6 (its dt of 1e-3, squared).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch


def _split(root, split, dataset):
    from neuromem.export.cli import _load_data

    inputs, labels = _load_data(root, split, None, None, dataset)
    return torch.as_tensor(np.asarray(inputs)).float(), torch.as_tensor(labels).long()


def _snntorch(features, hidden, classes):
    import snntorch as snn

    def leaky(n, output=False):
        return snn.Leaky(beta=torch.full((n,), 0.9), threshold=torch.ones(n), reset_mechanism="zero",
                         reset_delay=False, init_hidden=True, output=output, learn_beta=False)

    return torch.nn.Sequential(torch.nn.Linear(features, hidden), leaky(hidden), torch.nn.Linear(hidden, classes),
                               leaky(classes, output=True))


def _snntorch_counts(net, x):
    from snntorch import utils

    utils.reset(net)
    return torch.stack([net(step)[0] for step in x]).sum(0)


def _norse(features, hidden, classes):
    import norse.torch as norse
    from norse.torch.module.lif_box import LIFBoxCell, LIFBoxParameters

    def lif(n):  # per-neuron parameters: Norse's exporter writes them as they are (scalars fail nir.write)
        return LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.full((n,), 100.0), v_th=torch.full((n,), 0.1),
                                           v_leak=torch.zeros(n)))

    return norse.SequentialState(torch.nn.Linear(features, hidden), lif(hidden), torch.nn.Linear(hidden, classes),
                                 lif(classes))


def _norse_counts(net, x):
    state, total = None, 0
    for step in x:
        out, state = net(step, state)
        total = total + out
    return total


def _train(net, counts_of, inputs, labels, epochs, batch, seed):
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            counts = counts_of(net, inputs[rows].transpose(0, 1))
            loss = torch.nn.functional.cross_entropy(counts, labels[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


@torch.no_grad()
def _decisions(net, counts_of, inputs, batch=128):
    return torch.cat([counts_of(net, inputs[s:s + batch].transpose(0, 1)).argmax(-1)
                      for s in range(0, len(inputs), batch)]).numpy()


def main(argv=None) -> None:
    import nir

    from neuromem.export.nir.cell import import_cell

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--dataset", default="shd")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    train_x, train_y = _split(args.data_root, "train", args.dataset)
    test_x, test_y = _split(args.data_root, "test", args.dataset)
    features, classes = int(np.prod(train_x.shape[2:])), int(max(train_y.max(), test_y.max())) + 1
    args.out.mkdir(parents=True, exist_ok=True)
    for peer, build, counts_of, dt in (("snntorch", _snntorch, _snntorch_counts, None),
                                        ("norse", _norse, _norse_counts, 1e-6)):
        torch.manual_seed(args.seed)
        started = time.perf_counter()
        net = build(features, args.hidden, classes)
        _train(net, counts_of, train_x, train_y, args.epochs, 64, args.seed)
        theirs = _decisions(net, counts_of, test_x)
        if peer == "snntorch":
            from snntorch.export_nir import export_to_nir

            graph = export_to_nir(net, train_x[:1, 0], ignore_dims=[0])
        else:
            import norse.torch as norse

            graph = norse.to_nir(net, train_x[0, 0])
        path = args.out / f"{peer}.nir"
        nir.write(str(path), graph)
        cell, metrics, lines = import_cell(path, args.out / f"run-{peer}", dataset=args.dataset,
                                           data_root=args.data_root, dt=dt)
        ours = np.load(cell / "representations.npz")[f"{args.dataset}/predictions"]
        print(f"{peer}: trained {args.epochs} epochs in {time.perf_counter() - started:.0f} s; test accuracy in "
              f"{peer} {100 * float((theirs == test_y.numpy()).mean()):.2f}%, imported cell "
              f"{100 * metrics['test_accuracy']:.2f}%; decisions equal on {int((theirs == ours).sum())} of {len(ours)}")
        for line in lines:
            print("  " + line)


if __name__ == "__main__":
    main()
