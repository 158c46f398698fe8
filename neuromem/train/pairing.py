"""How a cell of two senses pairs its training samples (`neuromem ablate --pairing`).

- "class" (the default): each batch draws a fresh same-concept partner for every sample of the first sense,
  so only the concept (digit) is shared across senses;
- "item": every sample of the first sense has ONE fixed partner of the same concept in each other sense (a
  seeded one-to-one pairing within each concept, cycling where a concept has fewer partners), the same in every
  epoch: an episode (this visual digit with this spoken one) the network can store and be cued with.

`item_pairs` gives the one-to-one pairs themselves (no partner repeated): what item-level retrieval ranks.
"""

from __future__ import annotations

import numpy as np

PAIRINGS = ("class", "item")


def _pools(labels_a: np.ndarray, labels_b: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per concept present in a (in sorted order): its rows of a in order, and its rows of b seeded-shuffled."""
    rng = np.random.default_rng([seed, 0x17E4])
    pools = []
    for concept in np.unique(labels_a):
        rows_b = np.flatnonzero(labels_b == concept)
        pools.append((np.flatnonzero(labels_a == concept), rng.permutation(rows_b)))
    return pools


def item_partners(labels_a: np.ndarray, labels_b: np.ndarray, seed: int) -> np.ndarray:
    """(len(labels_a),) the fixed partner row in b of every row of a (same concept); -1 where b has none."""
    partners = np.full(len(labels_a), -1, dtype=np.int64)
    for rows_a, rows_b in _pools(np.asarray(labels_a), np.asarray(labels_b), seed):
        if len(rows_b):
            partners[rows_a] = rows_b[np.arange(len(rows_a)) % len(rows_b)]
    return partners


def item_pairs(labels_a: np.ndarray, labels_b: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one pairs of `item_partners` (rows of a, rows of b): per concept the first min(count a, count b)."""
    chosen_a, chosen_b = [], []
    for rows_a, rows_b in _pools(np.asarray(labels_a), np.asarray(labels_b), seed):
        count = min(len(rows_a), len(rows_b))
        chosen_a.append(rows_a[:count])
        chosen_b.append(rows_b[:count])
    return (np.concatenate(chosen_a) if chosen_a else np.zeros(0, np.int64),
            np.concatenate(chosen_b) if chosen_b else np.zeros(0, np.int64))


def with_pairing(configs: list, pairing: str | None) -> list:
    """--pairing into each cell's identity ("class", the default, leaves it unchanged); bad values one line."""
    from dataclasses import replace

    from neuromem.errors import NeuromemError
    from neuromem.train.tasks import TASKS

    if pairing is None or pairing == "class":
        return configs
    if pairing not in PAIRINGS:
        raise NeuromemError(f"--pairing {pairing!r} is not known; valid: {', '.join(PAIRINGS)}")
    alone = sorted({c.modality for c in configs if not (c.modality in TASKS and TASKS[c.modality].shared_network
                                                        and len(TASKS[c.modality].datasets) > 1)})
    if alone:
        raise NeuromemError(f"--pairing {pairing} applies to cells training two senses together (joint), not to "
                            f"{', '.join(alone)} (item-level retrieval of separate networks pairs them at evaluation)")
    return [replace(c, pairing=pairing) for c in configs]
