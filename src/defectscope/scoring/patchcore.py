"""PatchCore's scoring after the backbone: nearest bank entry per patch, Eq. 7 re-weighting.

numpy and faiss only, so the torch model (``defectscope.models.patchcore``) and the torch-free
runtime (``defectscope.runtime``) call this very function and cannot drift apart.

>>> grid, score = patchcore_scores(embeddings, index, bank, bank_neighbours)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from defectscope.scoring.nn_index import NearestNeighbours

REFINE_EF_SEARCH = 256  # search width when re-checking the most distant patches
REFINE_CHUNK = 8  # patches re-checked per call


def patchcore_scores(
    embeddings: np.ndarray,
    index: NearestNeighbours,
    bank: np.ndarray,
    bank_neighbours: np.ndarray,
    top_fraction: float = 0.0,
    map_dims: int = 0,
) -> tuple[np.ndarray, float]:
    """One image's embeddings (1 x D x h x w) -> patch distances (h x w) and the image score.

    The image score is ``top_mean`` of the patch distances (the largest alone when
    ``top_fraction`` is 0), re-weighted by how isolated the worst patch's nearest bank entry is
    (``reweight``).

    ``map_dims`` (0: all): the returned grid measures only the first ``map_dims`` channels, each
    patch against its nearest bank entry over all channels. For two-scale embeddings (the full
    input's channels first, the shrunk input's after) the wider view picks which normal patch
    to compare with, and the full input's detail says how far the patch is from it: the map
    stays as sharp as one scale's, where the joint distance would blur it with the coarse
    half's wider view.
    """
    _, dims, height, width = embeddings.shape
    patches = np.ascontiguousarray(embeddings[0].transpose(1, 2, 0).reshape(-1, dims))
    distances, indices = index.search(patches, 1)
    distances, indices = distances[:, 0].copy(), indices[:, 0].copy()
    if not index.exact:
        refine_worst(patches, distances, indices, index)
    worst = int(np.argmax(distances))
    weight = reweight(patches[worst], int(indices[worst]), bank, bank_neighbours)
    score = top_mean(distances, top_fraction) * weight
    if 0 < map_dims < dims:
        distances = np.linalg.norm(patches[:, :map_dims] - bank[indices, :map_dims], axis=1)
    return distances.reshape(height, width).astype(np.float32, copy=False), score


def top_mean(distances: np.ndarray, top_fraction: float) -> float:
    """The mean of the largest ``top_fraction`` of the patch distances (at least one patch).

    One patch's distance is noisy: a single odd patch of a good part can outscore a defect that
    spans many patches. Averaging over the worst few per cent keeps a defect of that extent at
    full strength and damps the lone outliers. With an approximate index the distances beyond
    the re-checked worst ones are upper bounds; their errors average out in the mean.

    >>> top_mean(np.array([0.0, 1.0, 2.0, 9.0]), 0.5)
    5.5
    """
    k = max(1, int(round(top_fraction * distances.size)))
    if k == 1:
        return float(distances.max())
    flat = np.asarray(distances, dtype=np.float64).ravel()
    return float(np.partition(flat, flat.size - k)[flat.size - k:].mean())


def refine_worst(patches: np.ndarray, distances: np.ndarray, indices: np.ndarray,
                 index: NearestNeighbours, ef_search: int = REFINE_EF_SEARCH,
                 chunk: int = REFINE_CHUNK) -> int:
    """Re-search the most distant patches with a much wider graph search, in place.

    The fast, narrow search can only miss a nearer bank row, never invent one, so its distances
    are upper bounds. The image score rests on the largest distance: re-searching patches from the
    largest approximate distance down, until the next approximate distance is below the largest
    re-searched one, finds the patch the wide search would call the worst while re-searching only a
    handful of patches. Returns how many were re-searched.
    """
    order = np.argsort(-distances, kind="stable")
    best = -np.inf
    done = 0
    while done < len(order) and distances[order[done]] > best:
        rows = order[done:done + chunk]
        refined, nearest = index.search(patches[rows], 1, ef_search=ef_search)
        better = refined[:, 0] < distances[rows]
        distances[rows[better]] = refined[better, 0]
        indices[rows[better]] = nearest[better, 0]
        best = max(best, float(distances[rows].max()))
        done += len(rows)
    return done


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
