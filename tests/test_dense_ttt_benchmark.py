"""benchmarks/trimodal_ttt.py runs end to end on a tiny network: table, figure, and reset() exact."""

import torch

from benchmarks.trimodal_ttt import DIRECTIONS, measure, write_figure, write_table
from neuromem.dense.trimodal import TriModalRecipe
from test_dense_trimodal import TINY, tri_modal

torch.set_num_threads(1)


def test_benchmark_measures_frozen_vs_adapting_and_reset_is_bit_exact(tmp_path):
    train, test = tri_modal(64, 0, "train"), tri_modal(64, 1, "test")
    results = {
        mode: measure(train, test, "small", mode, epochs=1, device="cpu", noise_levels=(0.0, 0.01),
                      recipe=TriModalRecipe(batch_size=32), overrides=TINY)
        for mode in ("attention", "gradient")
    }  # fmt: skip
    for result in results.values():
        assert result["memories_moved"] and result["reset_exact"]
        assert len(result["rows"]) == 2 * len(DIRECTIONS)
        assert all(0 <= r[k] <= 1 for r in result["rows"] for k in ("recall@1_frozen", "recall@1_adapting"))
    args = type("Args", (), {"epochs": 1, "preset": "small", "seed": 0, "train_limit": 64})()
    table = write_table(results, tmp_path, args).read_text()
    assert "| gradient | 0.01 | audio->text |" in table and "bit for bit: **True**" in table
    assert write_figure(results, tmp_path).stat().st_size > 1000
