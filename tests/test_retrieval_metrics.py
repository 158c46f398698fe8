import math

import numpy as np
import pytest
import torch

from neuromem.metrics import chance_recall_at_1, retrieval_metrics


def test_hand_computed_example():
    # gallery on the unit circle; two queries
    gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]])
    gallery_labels = [0, 1, 0, 1]
    query = torch.tensor([[1.0, 0.1], [-1.0, 0.05]])
    query_labels = [1, 1]
    # query 0 ranks: [1,0] (0.995), [.6,.8] (0.677), [0,1] (0.0995), [-1,0] -> relevance 0,1,1,0
    # query 1 ranks: [-1,0], [0,1] (0.05), [.6,.8] (-0.56), [1,0] -> relevance 0,1,1,0
    m = retrieval_metrics(query, gallery, query_labels, gallery_labels, ks=(1, 2))
    assert m["recall@1"] == 0.0 and m["recall@2"] == 1.0
    assert m["mrr"] == pytest.approx(0.5)
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    assert m["ndcg@10"] == pytest.approx(dcg / idcg)


def test_perfect_and_worst_and_mixed():
    emb = np.eye(3)
    perfect = retrieval_metrics(emb, emb, [0, 1, 2], [0, 1, 2])
    assert perfect == {"recall@1": 1.0, "recall@5": 1.0, "recall@10": 1.0, "mrr": 1.0, "ndcg@10": 1.0}
    # query 0's only relevant item is ranked 3rd (after two ties at 0, stable order) -> rr 1/3
    m = retrieval_metrics(np.array([[1.0, 0, 0]]), np.array([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]]), [7], [1, 2, 3],
                          ks=(1, 3))  # fmt: skip
    assert m["recall@1"] == 0.0 and m["recall@3"] == 0.0 and m["mrr"] == 0.0 and m["ndcg@10"] == 0.0
    m = retrieval_metrics(np.array([[0.9, 0.1, 0]]), np.array([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]]), [5], [1, 2, 5],
                          ks=(1, 2))  # fmt: skip
    assert m["recall@1"] == 1.0 and m["mrr"] == 1.0
    m = retrieval_metrics(np.array([[0.0, 0, 1]]), np.array([[0.0, 1, 0], [0, 0.5, 1], [1, 0, 0]]), [5], [1, 2, 5],
                          ks=(1, 2))  # fmt: skip
    # ranks: item1 (0.89), item0 (0), item2 (0) -> relevant at rank 3
    assert m["recall@2"] == 0.0 and m["mrr"] == pytest.approx(1 / 3)
    assert m["ndcg@10"] == pytest.approx((1 / math.log2(4)) / 1.0)


def test_chance_and_validation():
    assert chance_recall_at_1([0, 1], [0, 0, 1, 1]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        retrieval_metrics(np.ones((2, 3)), np.ones((2, 4)), [0, 1], [0, 1])
    with pytest.raises(ValueError):
        retrieval_metrics(np.ones((2, 3)), np.ones((2, 3)), [0], [0, 1])
