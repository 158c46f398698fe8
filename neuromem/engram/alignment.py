"""Cross-modal alignment of engrams: numpy functions, the permutation nulls batched in torch.

An *engram* here is a memory-layer representation: per sample, and per class
as the mean over that class's samples. Two modalities' engrams of the same
digit are compared four ways, each with a permutation test whose null
hypothesis is "the digit correspondence between the modalities carries no
information":

* cosine similarity of matching vs non-matching class means (needs both
  modalities in one space: same dimensionality), and the same over
  digit-paired single samples (per-sample engrams, reported without a test);
* linear CKA (Kornblith et al. 2019) on digit-paired samples;
* RSA: Spearman correlation of the two modalities' class representational
  dissimilarity matrices (1 - Pearson r between class means); null: permute
  one RDM's classes (Mantel test);
* CCA: mean canonical correlation of digit-paired samples after PCA to 3
  components per modality (CCA on more dimensions fits any two digit-clustered
  representations almost perfectly, see `align`).

Every null permutes the *digit labels* of one modality (for paired samples:
the k samples of digit d are paired with the k samples of digit pi(d)). A
sample-level shuffle would be the wrong null: any two networks that both
cluster by digit share block structure, so CKA/CCA would come out
"significant" even when the digits' engrams do not correspond. The same null
also absorbs CCA's positive bias. p = (1 + #null >= observed) / (1 + permutations).

The CKA and CCA nulls (the cost: a Gram-matrix product and an SVD per permutation) run batched in torch, float64,
on `device` (`neuromem engram --device`): the same permutations, drawn from the same numpy generator in the same
order as one at a time; each CKA null value from the digit blocks' inner products (whole digits exchanged: the
block of digits (c, d) meets the other's block (pi(c), pi(d))). Results come back to the CPU as numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata


def class_means(representations: np.ndarray, digits: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(C, D) mean representation of each class, in the order of `classes`."""
    return np.stack([representations[digits == c].mean(0) for c in classes])


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Ca, Cb) cosine similarity between the rows of a and the rows of b."""
    a_norm = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b_norm = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a_norm @ b_norm.T


def matching_minus_nonmatching(similarity: np.ndarray) -> tuple[float, float, float]:
    """(mean matching, mean non-matching, difference) of a square class x class matrix."""
    diagonal = np.diag(similarity)
    off = similarity[~np.eye(len(similarity), dtype=bool)]
    return float(diagonal.mean()), float(off.mean()), float(diagonal.mean() - off.mean())


def rdm(means: np.ndarray) -> np.ndarray:
    """Representational dissimilarity matrix: 1 - Pearson correlation between class means."""
    centred = means - means.mean(1, keepdims=True)
    return 1.0 - cosine_matrix(centred, centred)


def _upper(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.triu_indices(len(matrix), k=1)]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else 0.0


def _centred_gram(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0, keepdims=True)
    return x @ x.T


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA between paired samples x (n, d1) and y (n, d2); 1 for identical up to
    rotation and isotropic scaling, near 0 for unrelated."""
    k, l = _centred_gram(x), _centred_gram(y)
    denominator = np.linalg.norm(k) * np.linalg.norm(l)
    return float((k * l).sum() / denominator) if denominator > 0 else 0.0


def _pca(x: np.ndarray, components: int) -> np.ndarray:
    centred = x - x.mean(0, keepdims=True)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    keep = min(components, int((s > s.max() * 1e-9).sum()) if s.size else 0)
    return u[:, :keep] * s[:keep]


def _orthonormal_basis(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(0, keepdims=True)
    q, r = np.linalg.qr(centred)
    keep = np.abs(np.diag(r)) > 1e-9 * max(np.abs(np.diag(r)).max(initial=0.0), 1e-30)
    return q[:, keep]


def canonical_correlations(x: np.ndarray, y: np.ndarray, components: int) -> np.ndarray:
    """Canonical correlations of x and y after reducing each to `components` PCA dimensions."""
    qx = _orthonormal_basis(_pca(x, components))
    qy = _orthonormal_basis(_pca(y, components))
    if qx.shape[1] == 0 or qy.shape[1] == 0:
        return np.zeros(0)
    return np.clip(np.linalg.svd(qx.T @ qy, compute_uv=False), 0.0, 1.0)


def _p_value(observed: float, null: np.ndarray) -> float:
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))


def pair_by_digit(
    digits_a: np.ndarray, digits_b: np.ndarray, classes: np.ndarray, max_per_digit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic, balanced digit-matched pairs: for each digit in `classes` order, the
    k-th sample of that digit in a (in saved order) with the k-th in b, for k below the
    smallest per-digit count of either modality (and max_per_digit). Balanced blocks let
    the null permute whole digits."""
    pools_a = [np.flatnonzero(digits_a == digit) for digit in classes]
    pools_b = [np.flatnonzero(digits_b == digit) for digit in classes]
    count = min(min(map(len, pools_a)), min(map(len, pools_b)))
    if max_per_digit:
        count = min(count, max_per_digit)
    return (
        np.concatenate([pool[:count] for pool in pools_a]),
        np.concatenate([pool[:count] for pool in pools_b]),
    )


def _block_permutation(order: np.ndarray, block: int) -> np.ndarray:
    """Row order that puts block order[c] where block c was (whole digits exchanged)."""
    return (order[:, None] * block + np.arange(block)[None, :]).reshape(-1)


def block_cka_null(gram_x: np.ndarray, gram_y: np.ndarray, orders: np.ndarray, device: torch.device | str = "cpu"
                   ) -> np.ndarray:
    """sum(gram_x * gram_y[P, P]) for each whole-digit permutation P (orders: (K, C), rows in C equal blocks):
    sum over digit blocks (c, d) of <gram_x block (c, d), gram_y block (order[c], order[d])>, on `device`."""
    classes = orders.shape[1]
    block = len(gram_x) // classes
    gx = torch.as_tensor(gram_x, dtype=torch.float64, device=device).reshape(classes, block, classes, block)
    gy = torch.as_tensor(gram_y, dtype=torch.float64, device=device).reshape(classes, block, classes, block)
    inner = torch.einsum("cidj,eifj->cdef", gx, gy)  # (C, C, C, C): block (c, d) of x against block (e, f) of y
    order = torch.as_tensor(orders, dtype=torch.long, device=device)
    rows = torch.arange(classes, device=device)
    picked = inner[rows[:, None], rows[None, :], order[:, :, None], order[:, None, :]]  # (K, C, C)
    return picked.sum((1, 2)).cpu().numpy()


def block_cca_null(qx: np.ndarray, qy: np.ndarray, orders: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """Mean canonical correlation of qx with qy's whole digit blocks permuted, for each order (K, C), on `device`."""
    if qx.shape[1] == 0 or qy.shape[1] == 0:
        return np.zeros(len(orders))
    x = torch.as_tensor(qx, dtype=torch.float64, device=device)
    y = torch.as_tensor(qy, dtype=torch.float64, device=device)
    null = []
    for start in range(0, len(orders), 1024):  # (1024, n, k) permuted copies at a time
        rows = np.stack([_block_permutation(order, len(qy) // orders.shape[1]) for order in orders[start:start + 1024]])
        null.append(torch.linalg.svdvals(x.T @ y[torch.as_tensor(rows, device=device)]).clamp(0, 1).mean(-1).cpu())
    return torch.cat(null).numpy()


@dataclass
class AlignmentResult:
    classes: list[int]
    n_pairs: int
    permutations: int
    cosine: dict | None  # None when the two representations live in spaces of different size
    cka: dict
    rsa: dict
    cca: dict
    class_cosine: list[list[float]] | None
    within_similarity: dict[str, list[list[float]]]
    rdms: dict[str, list[list[float]]]


def align(
    modality_a: str,
    reps_a: np.ndarray,
    digits_a: np.ndarray,
    modality_b: str,
    reps_b: np.ndarray,
    digits_b: np.ndarray,
    permutations: int = 1000,
    seed: int = 0,
    max_pairs_per_digit: int | None = 50,
    cca_components: int | None = None,
    device: torch.device | str = "cpu",
) -> AlignmentResult:
    """All four alignment measures with permutation p-values. The class sets must match. The CKA and CCA
    nulls run on `device`."""
    classes = np.unique(digits_a)
    rng = np.random.default_rng(seed)
    means_a, means_b = class_means(reps_a, digits_a, classes), class_means(reps_b, digits_b, classes)

    cosine, class_cosine = None, None
    if reps_a.shape[1] == reps_b.shape[1]:
        similarity = cosine_matrix(means_a, means_b)
        matching, non_matching, difference = matching_minus_nonmatching(similarity)
        null = np.array(
            [matching_minus_nonmatching(similarity[:, rng.permutation(len(classes))])[2] for _ in range(permutations)]
        )
        cosine = {
            "matching": matching,
            "non_matching": non_matching,
            "difference": difference,
            "p_value": _p_value(difference, null),
            "null_mean": float(null.mean()),
        }
        class_cosine = similarity.tolist()

    rdm_a, rdm_b = rdm(means_a), rdm(means_b)
    rsa_value = spearman(_upper(rdm_a), _upper(rdm_b))
    rsa_null = []
    for _ in range(permutations):
        order = rng.permutation(len(classes))
        rsa_null.append(spearman(_upper(rdm_a), _upper(rdm_b[np.ix_(order, order)])))
    rsa = {"spearman_r": rsa_value, "p_value": _p_value(rsa_value, np.array(rsa_null)), "null_mean": float(np.mean(rsa_null))}

    index_a, index_b = pair_by_digit(digits_a, digits_b, classes, max_pairs_per_digit)
    x, y = reps_a[index_a], reps_b[index_b]
    if cosine is not None:
        # per-sample engrams: cosine of every paired-set sample with every other, same digit vs not
        sample_similarity = cosine_matrix(x, y)
        same_digit = digits_a[index_a][:, None] == digits_b[index_b][None, :]
        cosine["per_sample_matching"] = float(sample_similarity[same_digit].mean())
        cosine["per_sample_non_matching"] = float(sample_similarity[~same_digit].mean())
    gram_x, gram_y = _centred_gram(x), _centred_gram(y)
    norm = np.linalg.norm(gram_x) * np.linalg.norm(gram_y)
    cka_value = float((gram_x * gram_y).sum() / norm) if norm > 0 else 0.0
    orders = np.stack([rng.permutation(len(classes)) for _ in range(permutations)])
    cka_null = block_cka_null(gram_x, gram_y, orders, device) / norm if norm > 0 else np.zeros(permutations)
    # CKA's chance level is far above 0 for digit-clustered data (shared block structure): see null_mean
    cka = {"linear_cka": cka_value, "p_value": _p_value(cka_value, np.array(cka_null)), "null_mean": float(np.mean(cka_null))}

    # few components on purpose: C class means span C - 1 dimensions, and any two such
    # configurations are related by a linear map, so CCA on C - 1 components is near 1
    # whatever the digit correspondence and would measure nothing
    components = cca_components or max(1, min(3, len(classes) - 2))
    qx = _orthonormal_basis(_pca(x, components))
    qy = _orthonormal_basis(_pca(y, components))

    correlations = (
        np.clip(np.linalg.svd(qx.T @ qy, compute_uv=False), 0, 1) if qx.shape[1] and qy.shape[1] else np.zeros(0)
    )
    cca_value = float(correlations.mean()) if correlations.size else 0.0
    cca_null = block_cca_null(qx, qy, np.stack([rng.permutation(len(classes)) for _ in range(permutations)]), device)
    cca = {
        "mean_canonical_correlation": cca_value,
        "canonical_correlations": correlations.tolist(),
        "components": int(components),
        "p_value": _p_value(cca_value, cca_null),
        "null_mean": float(cca_null.mean()),
    }
    return AlignmentResult(
        classes=[int(c) for c in classes],
        n_pairs=int(len(x)),
        permutations=permutations,
        cosine=cosine,
        cka=cka,
        rsa=rsa,
        cca=cca,
        class_cosine=class_cosine,
        within_similarity={
            modality_a: cosine_matrix(means_a, means_a).tolist(),
            modality_b: cosine_matrix(means_b, means_b).tolist(),
        },
        rdms={modality_a: rdm_a.tolist(), modality_b: rdm_b.tolist()},
    )
