"""The binned cache's sparse rows: the same batches as the dense counts they stand for, smaller on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neuromem.data.batching import time_major_batch
from neuromem.data.sparse_counts import SparseCounts, concatenate, from_dense


def _counts(shape, density=0.05, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 4, size=shape).astype(np.uint8)
    counts[rng.random(shape) > density] = 0
    return counts


@pytest.mark.parametrize("shape", [(9, 12, 700), (7, 5, 2, 34, 34)])
def test_batches_from_sparse_rows_equal_the_dense_ones(shape):
    dense = _counts(shape)
    sparse = from_dense(dense)
    assert sparse.shape == dense.shape and len(sparse) == len(dense) and sparse.dtype == np.uint8
    assert np.array_equal(np.asarray(sparse), dense)
    rows = np.array([4, 0, 4, len(dense) - 1, 2])  # repeated rows and any order, as a shuffled batch has
    got, want = time_major_batch(sparse, rows), time_major_batch(dense, rows)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.array_equal(got.numpy(), want.numpy())
    assert got.transpose(0, 1).is_contiguous()  # time-major storage, as the network wants it
    # a buffer reused from the pool holds old values: the scatter must clear it
    again = time_major_batch(sparse, rows[:1])
    assert np.array_equal(again.numpy(), dense[rows[:1]].astype(np.float32))


def test_views_select_rows_without_copying_the_events():
    dense = _counts((10, 6, 20), density=0.3)
    sparse = from_dense(dense)
    view = sparse[np.array([7, 2, 9])]
    assert isinstance(view, SparseCounts) and view.index is sparse.index
    assert np.array_equal(np.asarray(view), dense[[7, 2, 9]])
    assert np.array_equal(np.asarray(view[1:]), dense[[2, 9]])
    assert np.array_equal(view[0], dense[7]) and np.array_equal(sparse[-1], dense[-1])
    mask = np.zeros(10, dtype=bool)
    mask[[1, 3]] = True
    assert np.array_equal(np.asarray(sparse[mask]), dense[mask])
    with pytest.raises(IndexError):
        sparse[10]
    with pytest.raises(IndexError):
        sparse[np.array([0, 11])]


def test_concatenate_keeps_order_and_mixes_dense_parts():
    a, b = _counts((4, 6, 20), seed=1), _counts((3, 6, 20), seed=2)
    joined = concatenate([from_dense(a)[np.array([3, 1])], b])
    assert isinstance(joined, SparseCounts)
    assert np.array_equal(np.asarray(joined), np.concatenate([a[[3, 1]], b]))
    assert isinstance(concatenate([a, b]), np.ndarray)  # dense stays dense
    with pytest.raises(ValueError, match="shapes"):
        concatenate([from_dense(a), _counts((2, 5, 20))])


def test_cached_split_is_sparse_on_disk_and_equal_to_its_events(tmp_path):
    """The embedded N-MNIST stand-in: the entry is several times smaller than its dense counts, and re-read
    (memory-mapped) it gives the same counts as binning each sample again."""
    from neuromem.data import load_split
    from neuromem.data.binning import FixedWindowFrames
    from neuromem.data.registry import get_dataset
    from neuromem.data import synthesize

    root = tmp_path / "data"
    synthesize(root, seed=0, modalities=["nmnist"], nmnist_train_per_class=1, nmnist_test_per_class=1)
    binned = load_split("nmnist", root, "test", cache_dir=tmp_path / "cache")
    entry = Path(binned.meta["cache_entry"])
    stored = sum(p.stat().st_size for p in entry.iterdir() if p.name != "meta.json")
    dense_bytes = int(np.prod(binned.inputs.shape))
    assert stored * 3 < dense_bytes, (stored, dense_bytes)  # ~8% of its bins hold events
    spec, source = get_dataset("nmnist").spec, get_dataset("nmnist").read(root, "test")
    frames = FixedWindowFrames(spec.sensor_size, spec.time_bins, spec.window_us)
    for i in range(len(binned)):
        assert np.array_equal(binned.inputs[i], np.minimum(frames(source.events(i)), 255))
    assert json.loads((entry / "meta.json").read_text())["stored_bytes"] <= stored


def test_damaged_sparse_entry_is_rebuilt_not_trusted(tmp_path):
    from neuromem.data import load_split
    from neuromem.data import synthesize

    root = tmp_path / "data"
    synthesize(root, seed=0, modalities=["shd"], shd_train_per_class=1, shd_test_per_class=1)
    first = load_split("shd", root, "test", cache_dir=tmp_path / "cache")
    want = np.asarray(first.inputs)
    entry = Path(first.meta["cache_entry"])
    index = entry / "index.u16"
    index.write_bytes(index.read_bytes()[:-2])  # one step short
    again = load_split("shd", root, "test", cache_dir=tmp_path / "cache")
    assert again.meta["cache_hit"] is False and np.array_equal(np.asarray(again.inputs), want)
    offsets = np.load(entry / "offsets.npy")
    offsets[1] = offsets[-1] + 5  # rows that run past the events
    np.save(entry / "offsets.npy", offsets)
    third = load_split("shd", root, "test", cache_dir=tmp_path / "cache")
    assert third.meta["cache_hit"] is False and np.array_equal(np.asarray(third.inputs), want)


def test_split_over_the_cap_is_used_and_says_it_will_be_binned_again(tmp_path, monkeypatch, capsys):
    from neuromem.data import load_split
    from neuromem.data import synthesize

    root = tmp_path / "data"
    synthesize(root, seed=0, modalities=["shd"], shd_train_per_class=1, shd_test_per_class=1)
    monkeypatch.setenv("NEUROMEM_CACHE_MAX_BYTES", "1K")
    binned = load_split("shd", root, "test", cache_dir=tmp_path / "cache")
    err = capsys.readouterr().err
    assert len(binned) == 20 and "over the cache cap of 1.0 KB" in err and "NEUROMEM_CACHE_MAX_BYTES" in err
    load_split("shd", root, "test", cache_dir=tmp_path / "cache")
    assert capsys.readouterr().err == ""  # a cache hit says nothing


def test_wide_gaps_are_bridged_and_damaged_rows_refused():
    dense = np.zeros((2, 200, 700), dtype=np.uint8)
    dense[0, 0, 0] = 3
    dense[0, 199, 699] = 1  # 139,999 bins after the first: two bridging steps
    dense[1, 120, 5] = 2
    sparse = from_dense(dense)
    assert len(sparse.index) == 6 and np.array_equal(np.asarray(sparse), dense)
    assert np.array_equal(time_major_batch(sparse, np.array([1, 0])).numpy(), dense[[1, 0]].astype(np.float32))
    damaged = SparseCounts(sparse.offsets, np.full_like(sparse.index, 65535), sparse.counts, sparse.sample_shape)
    with pytest.raises(ValueError, match="damaged cache entry"):
        time_major_batch(damaged, np.array([0]))


def test_pages_handed_back_are_read_again(tmp_path, monkeypatch):
    """A worker hands the cache's mapped pages back as it goes (its resident memory does not grow with the split);
    what it reads afterwards is the same."""
    import neuromem.data.sparse_counts as sparse_counts
    from neuromem.data import load_split, synthesize

    root = tmp_path / "data"
    synthesize(root, seed=0, modalities=["shd"], shd_train_per_class=1, shd_test_per_class=1)
    binned = load_split("shd", root, "test", cache_dir=tmp_path / "cache")
    want = np.asarray(binned.inputs).astype(np.float32)
    advised = []

    class Recording:
        def __init__(self, mapping):
            self.mapping = mapping

        def madvise(self, option, *args):
            advised.append(option)
            return self.mapping.madvise(option, *args)

    sparse = binned.inputs
    assert isinstance(sparse.index, np.memmap) and isinstance(sparse.counts, np.memmap)
    sparse.index._mmap = Recording(sparse.index._mmap)
    monkeypatch.setattr(sparse_counts, "RELEASE_EVERY_BYTES", 1)
    for rows in (np.arange(10), np.arange(10, 20), np.arange(20)):
        assert np.array_equal(time_major_batch(sparse, rows).numpy(), want[rows])
    assert advised == [sparse_counts.mmap.MADV_DONTNEED] * 3
