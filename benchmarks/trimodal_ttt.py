"""Test-time training of the tri-modal memory network on a distribution-shifted stream.

    python -m benchmarks.trimodal_ttt [--epochs 6] [--preset reduced|small|default|large] [--out benchmarks]

The shift: noisier audio. The test split's spoken digits get Poisson
background events (`audio_noise` r per original channel and time bin,
`TriModalDigits.batch`) that the network never saw in training (it trains on
clean audio), while text and images stay clean. For each TTT mode
(attention-gated writes, gradient writes) one network is trained, then the
noisy test set streams through it in batches of 32, audio query -> image /
text gallery, twice: memories frozen (no test-time writes) and adapting
(every batch read, then written, as under ``model.eval()``). Before each
stream, and at the end, `reset()` restores the trained memories; the script
checks bit for bit that it does.

"reduced" (the default here) is the documented network at a CPU-sized
configuration (latent 128, 2 layers, 32x32 images); the document's presets
run with `--preset` (on a GPU: the default one takes minutes per epoch on CPU).
Writes `trimodal_ttt.md` (the table), `trimodal_ttt.png` (the figure) and
`trimodal_ttt.json` (the numbers) to `--out`; every number in them is measured
by this script.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from neuromem.dense.data import VOCAB_SIZE, load_trimodal
from neuromem.dense.network import preset as network_preset
from neuromem.dense.trimodal import (
    TriModalModel,
    TriModalRecipe,
    default_device,
    embed_all,
    evaluate_retrieval,
    train_trimodal,
)
from neuromem.dense.network import MultiModalMemoryNetwork

REDUCED = dict(
    latent_dim=128, num_heads=4, num_layers=2, vocab_size=VOCAB_SIZE, text_embed_dim=128, text_seq_len=24,
    image_size=32, patch_size=8, image_channels=1, audio_freq=32, audio_time=32, memory_size=64,
)  # fmt: skip
NOISE_LEVELS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.4)
DIRECTIONS = [("audio", "image"), ("audio", "text")]
STREAM_BATCH = 32


def network_options(preset: str, mode: str) -> tuple[str, dict]:
    if preset == "reduced":
        return "small", {**REDUCED, "ttt_mode": mode}
    return preset, {"ttt_mode": mode}


def measure(train, test, preset: str, mode: str, epochs: int, seed: int = 0, device: str | None = None,
            noise_levels=NOISE_LEVELS, recipe: TriModalRecipe | None = None, overrides: dict | None = None) -> dict:  # fmt: skip
    """Train one network in `mode`, then stream the shifted test set frozen vs adapting at each noise level."""
    name, options = network_options(preset, mode)
    options.update(overrides or {})
    torch.manual_seed(seed)
    model = TriModalModel(MultiModalMemoryNetwork.from_config(network_preset(name, **options))).to(device or default_device())
    recipe = recipe or TriModalRecipe(batch_size=32, lr=2e-3)
    started = time.perf_counter()
    train_trimodal(model, train, recipe, epochs, seed)
    model.eval()
    net = model.network
    trained = {k: v.clone() for k, v in net.memory_state().items()}
    clean = {m: embed_all(model, test, m, 128, 0.0, seed) for m in ("text", "image")}
    rows, reset_exact = [], True
    for noise in noise_levels:
        embeddings = {**clean, "audio": embed_all(model, test, "audio", 128, noise, seed)}
        scores = {}
        for tag, adapt in (("frozen", False), ("adapting", True)):
            scores[tag] = evaluate_retrieval(model, test, batch_size=STREAM_BATCH, adapt=adapt, audio_noise=noise,
                                             seed=seed, directions=DIRECTIONS, embeddings=embeddings)  # fmt: skip
        # the adapting stream has written every batch; evaluate_retrieval resets at the end: check it is exact
        reset_exact &= all(torch.equal(v, trained[k]) for k, v in net.memory_state().items())
        for source, target in DIRECTIONS:
            key = f"retrieval_{source}_to_{target}"
            rows.append(dict(mode=mode, noise=noise, direction=f"{source}->{target}",
                             **{f"{m}_{tag}": scores[tag][f"{key}_{m}"] for tag in scores for m in ("recall@1", "mrr")}))
    # one more explicit stream, kept adapted, then reset(): bit for bit the trained memories
    with torch.no_grad():
        for start in range(0, len(test), STREAM_BATCH):
            batch = test.batch(range(start, min(start + STREAM_BATCH, len(test))), net.config.image_size,
                               net.config.image_channels, noise_levels[-1])  # fmt: skip
            net(audio=batch["audio"].to(next(net.parameters()).device))
    moved = any(not torch.equal(v, trained[k]) for k, v in net.memory_state().items())
    net.reset()
    reset_exact &= moved and all(torch.equal(v, trained[k]) for k, v in net.memory_state().items())
    return {"rows": rows, "reset_exact": reset_exact, "memories_moved": moved, "seconds": time.perf_counter() - started,
            "parameters": sum(p.numel() for p in model.parameters()), "describe": net.describe()}


def write_table(results: dict[str, dict], out: Path, args) -> Path:
    lines = [
        "# Test-time training on a shifted stream (noisier audio)",
        "",
        f"Measured by `python -m benchmarks.trimodal_ttt --epochs {args.epochs} --preset {args.preset}` "
        f"(seed {args.seed}; {args.train_limit or 'all'} training samples of the data root, test split streamed in "
        f"batches of {STREAM_BATCH}). Audio noise: Poisson background events per original channel and time bin, "
        "never seen in training. Frozen: memories read only; adapting: every batch read, then written.",
        "",
    ]
    for mode, result in results.items():
        d = result["describe"]
        lines.append(f"- **{mode}**: {d['network']}, central memory {d['central_memory']}, modality memories "
                     f"{d['modality_memories']}, {result['parameters'] / 1e6:.2f}M parameters, trained and measured in "
                     f"{result['seconds']:.0f} s; memories moved while streaming: {result['memories_moved']}; "
                     f"`reset()` restored the trained memories bit for bit: **{result['reset_exact']}**")
    lines += ["", "| mode | audio noise | direction | R@1 frozen | R@1 adapting | gain | MRR frozen | MRR adapting |",
              "|---|---|---|---|---|---|---|---|"]
    for result in results.values():
        for r in result["rows"]:
            gain = r["recall@1_adapting"] - r["recall@1_frozen"]
            lines.append(f"| {r['mode']} | {r['noise']:g} | {r['direction']} | {r['recall@1_frozen']:.3f} | "
                         f"{r['recall@1_adapting']:.3f} | {gain:+.3f} | {r['mrr_frozen']:.3f} | {r['mrr_adapting']:.3f} |")
    path = out / "trimodal_ttt.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_figure(results: dict[str, dict], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6), sharey=True, squeeze=False)
    for ax, (mode, result) in zip(axes[0], results.items()):
        for (source, target), color in zip(DIRECTIONS, ("tab:blue", "tab:orange")):
            rows = [r for r in result["rows"] if r["direction"] == f"{source}->{target}"]
            noise = [r["noise"] for r in rows]
            ax.plot(noise, [r["recall@1_adapting"] for r in rows], "o-", color=color, label=f"{source}->{target} adapting")
            ax.plot(noise, [r["recall@1_frozen"] for r in rows], "s--", color=color, alpha=0.7,
                    label=f"{source}->{target} frozen")  # fmt: skip
        ax.set_xscale("symlog", linthresh=0.02)
        ax.set_xticks(noise, [f"{n:g}" for n in noise])
        ax.set_ylim(0, 1)
        ax.set_title(f"ttt_mode={mode!r}")
        ax.set_xlabel("audio noise (background events per bin)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Recall@1")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("Tri-modal memory network: retrieval on a noisier-audio stream, memories frozen vs adapting")
    fig.tight_layout()
    path = out / "trimodal_ttt.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    from neuromem.data import resolve_data_root

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--preset", default="reduced", choices=["reduced", "small", "default", "large"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-limit", type=int, default=None, help="cap on training samples")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    root, source = resolve_data_root(args.data_root)
    name, options = network_options(args.preset, "attention")
    config = network_preset(name, **options)
    train = load_trimodal(root, "train", config.audio_freq, config.audio_time, config.text_seq_len, args.seed)
    test = load_trimodal(root, "test", config.audio_freq, config.audio_time, config.text_seq_len, args.seed)
    if args.train_limit:
        from neuromem.dense.trimodal import subset
        import numpy as np

        train = subset(train, np.sort(np.random.default_rng(args.seed).permutation(len(train))[: args.train_limit]))
    print(f"data: {source} at {root}; {len(train)} train, {len(test)} test")
    results = {}
    for mode in ("attention", "gradient"):
        results[mode] = measure(train, test, args.preset, mode, args.epochs, args.seed)
        print(mode, f"{results[mode]['seconds']:.0f} s, reset exact: {results[mode]['reset_exact']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "trimodal_ttt.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(write_table(results, args.out, args).read_text())
    print("figure:", write_figure(results, args.out))


if __name__ == "__main__":
    main()
