"""The Heidelberg-layout writer streams: one sample in memory at a time, the file atomic."""
from __future__ import annotations

import inspect

import h5py
import numpy as np
import pytest

from neuromem.data import formats
from neuromem.data.synth import ssc


def _samples(n, seen):
    for i in range(n):
        seen.append(i)
        yield np.array([0.1, 0.2 + i / 100]), np.array([i, i + 1]), i % 3, 7 + i


def test_stream_writes_every_sample_as_it_comes(tmp_path):
    path, seen = tmp_path / "SHD" / "shd_train.h5", []
    formats.write_heidelberg_stream(path, 5, _samples(5, seen), ["a", "b", "c"])
    with h5py.File(path) as f:
        assert list(f["labels"][:]) == [0, 1, 2, 0, 1] and list(f["extra/speaker"][:]) == [7, 8, 9, 10, 11]
        assert list(f["spikes/units"][4]) == [4, 5]
        assert f["spikes/times"][3].dtype == np.float16
    assert seen == list(range(5))


@pytest.mark.parametrize("announced", [4, 6])
def test_a_count_that_is_not_the_announced_one_leaves_no_file(tmp_path, announced):
    path = tmp_path / "SHD" / "shd_train.h5"
    with pytest.raises(ValueError, match="announced"):
        formats.write_heidelberg_stream(path, announced, _samples(5, []), ["a"])
    assert not path.exists() and not list(path.parent.iterdir())


def test_the_word_stand_ins_hand_the_writer_a_generator_not_a_list(tmp_path, monkeypatch):
    """SSC at its real size is ~10 GB of events: a list of a whole split is what broke it."""
    kinds = []

    def record(path, n, samples, keys):
        kinds.append((inspect.isgenerator(samples), n))
        for _ in samples:
            pass
    monkeypatch.setattr(formats, "write_heidelberg_stream", record)
    summary = ssc.write_ssc(tmp_path, cfg=ssc.SSCSynthConfig(train_per_class=1, valid_per_class=1, test_per_class=1))
    assert kinds and all(is_generator for is_generator, _ in kinds)
    assert [n for _, n in kinds] == [s["samples"] for s in summary.values()] == [len(ssc.WORDS)] * 3
