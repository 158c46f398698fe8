"""The buffer pool: a block is handed out again only once nothing refers to its tensor."""

import pytest
import torch

from neuromem import cpu_tier
from neuromem.neurons.functional import buffers

pytestmark = pytest.mark.skipif(not cpu_tier.TUNED, reason="the buffer pool belongs to the tuned CPU tier")

SHAPE = (512, 1024)  # 2 MiB of float32: pooled with the limit below


@pytest.fixture(autouse=True)
def pool_from_one_mebibyte(monkeypatch):
    monkeypatch.setattr(buffers, "POOLED_MIN_BYTES", 1 << 20)
    buffers.clear()
    yield
    buffers.clear()


def _address(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage().data_ptr()


def test_block_reused_only_after_tensor_and_views_are_gone():
    buffers.clear()
    first = buffers.empty(SHAPE, torch.float32)
    first.fill_(7.0)
    view, address = first[100:], _address(first)
    del first
    second = buffers.empty(SHAPE, torch.float32)
    assert _address(second) != address  # a view still refers to the first block
    assert torch.all(view == 7.0)
    del view
    third = buffers.empty(SHAPE, torch.float32)
    assert _address(third) == address  # free again: reused, no new allocation
    total, free = buffers.pooled_bytes()
    assert (total, free) == (2 * third.numel() * 4, 0)


def test_numpy_views_keep_the_block_in_use():
    buffers.clear()
    tensor = buffers.empty(SHAPE, torch.float32)
    array, address = tensor.numpy(), _address(tensor)
    del tensor
    assert _address(buffers.empty(SHAPE, torch.float32)) != address
    del array


def test_zeros_are_zero_on_a_reused_block_and_other_shapes_and_dtypes_work():
    buffers.clear()
    dirty = buffers.empty(SHAPE, torch.float32)
    dirty.fill_(3.0)
    del dirty
    assert torch.count_nonzero(buffers.zeros(SHAPE, torch.float32)) == 0
    assert buffers.empty((2, 3), torch.float64).shape == (2, 3)  # small: plain numpy
    assert buffers.empty((1024, 1024), torch.float64).dtype == torch.float64


def test_free_blocks_beyond_the_limit_are_released(monkeypatch):
    buffers.clear()
    monkeypatch.setattr(buffers, "POOL_FREE_LIMIT_BYTES", 3 << 20)
    for rows in (512, 513, 514, 515):  # four sizes, each used once and dropped
        buffers.empty((rows, 1024), torch.float32)
    total, free = buffers.pooled_bytes()
    assert total == free and free <= (3 << 20) + 515 * 1024 * 4
    buffers.clear()
    assert buffers.pooled_bytes() == (0, 0)
