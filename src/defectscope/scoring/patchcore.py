"""PatchCore's scoring after the backbone: nearest bank entry per patch, Eq. 7 re-weighting.

numpy and faiss only, so the torch model (``defectscope.models.patchcore``) and the torch-free
runtime (``defectscope.runtime``) call this very function and cannot drift apart.

>>> grid, score = patchcore_scores(embeddings, index, bank, bank_neighbours)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from defectscope.scoring.nn_index import NearestNeighbours


def patchcore_scores(
    embeddings: np.ndarray,
    index: NearestNeighbours,
    bank: np.ndarray,
    bank_neighbours: np.ndarray,
) -> tuple[np.ndarray, float]:
    """One image's embeddings (1 x D x h x w) -> patch distances (h x w) and the image score.

    The image score is the largest patch distance, re-weighted by how isolated its nearest bank
    entry is (``reweight``).
    """
    _, dims, height, width = embeddings.shape
    patches = np.ascontiguousarray(embeddings[0].transpose(1, 2, 0).reshape(-1, dims))
    distances, indices = index.search(patches, 1)
    distances = distances[:, 0]
    worst = int(np.argmax(distances))
    weight = reweight(patches[worst], int(indices[worst, 0]), bank, bank_neighbours)
    return distances.reshape(height, width), float(distances[worst]) * weight


def reweight(patch: np.ndarray, nearest: int, bank: np.ndarray,
             bank_neighbours: np.ndarray) -> float:
    """Eq. 7: ``1 - exp(d(m*)) / sum over N_b(m*) of exp(d(m))`` (a softmax of distances).

    A worst patch whose nearest bank entry sits in a sparse region of the bank counts less: such
    an entry is itself unusual, so being close to it is weaker evidence of normality.
    """
    support = bank_neighbours[nearest]
    support = support[support >= 0]
    if support[0] != nearest:
        support = np.concatenate([[nearest], support[support != nearest]])
    distances = np.linalg.norm(bank[support] - patch, axis=1)
    shifted = np.exp(distances - distances.max())  # softmax, numerically stable
    return float(1.0 - shifted[0] / shifted.sum()) if len(support) > 1 else 1.0
