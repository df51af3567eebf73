"""The shared post-backbone math, checked against plain float64 formulas."""

from __future__ import annotations

import numpy as np
import pytest

from defectscope.errors import DefectscopeError
from defectscope.scoring import (
    NearestNeighbours,
    anomaly_map,
    padim_scores,
    patchcore_scores,
    reweight,
)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_patchcore_distances_are_nearest_bank_distances(rng):
    bank = rng.standard_normal((300, 8)).astype(np.float32)
    embeddings = rng.standard_normal((1, 8, 4, 5)).astype(np.float32)
    _, neighbours = NearestNeighbours.from_bank(bank).search(bank, 3)
    grid, score = patchcore_scores(embeddings, NearestNeighbours.from_bank(bank), bank, neighbours)
    patches = embeddings[0].transpose(1, 2, 0).reshape(-1, 8).astype(np.float64)
    expected = np.sqrt(((patches[:, None] - bank[None]) ** 2).sum(-1)).min(1).reshape(4, 5)
    np.testing.assert_allclose(grid, expected, rtol=1e-4, atol=1e-4)
    assert 0 < score < grid.max()  # re-weighted by a softmax weight in (0, 1)


def test_reweight_of_a_lone_bank_entry_is_one():
    bank = np.zeros((1, 4), np.float32)
    assert reweight(np.ones(4, np.float32), 0, bank, np.array([[0, -1, -1]])) == 1.0


def test_padim_is_the_mahalanobis_distance(rng):
    dims, grid = 6, (2, 3)
    mean = rng.standard_normal((6, dims)).astype(np.float32)
    a = rng.standard_normal((6, dims, dims))
    inverse = np.linalg.inv(a @ a.transpose(0, 2, 1) + np.eye(dims)).astype(np.float32)
    embeddings = rng.standard_normal((1, dims, *grid)).astype(np.float32)
    distances, score = padim_scores(embeddings, mean, inverse, grid)
    x = embeddings[0].reshape(dims, -1).T.astype(np.float64) - mean
    expected = np.sqrt(np.einsum("pi,pij,pj->p", x, inverse.astype(np.float64), x))
    np.testing.assert_allclose(distances.ravel(), expected, rtol=1e-4)
    assert score == pytest.approx(expected.max(), rel=1e-4)
    with pytest.raises(DefectscopeError, match="feature grid"):
        padim_scores(embeddings, mean, inverse, (3, 2))


def test_anomaly_map_has_the_image_size_and_keeps_a_flat_grid_flat():
    flat = np.full((4, 4), 2.5, np.float32)
    result = anomaly_map(flat, (64, 64), (100, 130), blur_sigma=4.0)
    assert result.shape == (100, 130) and result.dtype == np.float32
    np.testing.assert_allclose(result, 2.5, rtol=1e-5)
    peak = np.zeros((4, 4), np.float32)
    peak[1, 2] = 1.0
    unblurred = anomaly_map(peak, (64, 64), (64, 64), blur_sigma=0)
    assert 0.9 < unblurred.max() <= 1.0 and unblurred.shape == (64, 64)  # bilinear, no blur


def test_refine_worst_recovers_the_exact_largest_distance(rng):
    from defectscope.scoring.patchcore import refine_worst

    bank = rng.standard_normal((6000, 16)).astype(np.float32)
    queries = rng.standard_normal((400, 16)).astype(np.float32) * 1.5
    index = NearestNeighbours.from_bank(bank, exact_limit=100, hnsw_m=4, ef_search=1)
    assert not index.exact
    distances, indices = index.search(queries, 1)
    distances, indices = distances[:, 0].copy(), indices[:, 0].copy()
    exact = np.sqrt(((queries[:, None].astype(np.float64) - bank[None]) ** 2).sum(-1)).min(1)
    assert np.any(distances > exact + 1e-4)  # the narrow search misses some neighbours
    searched = refine_worst(queries, distances, indices, index, ef_search=2000)
    assert searched < len(queries)  # only the most distant patches are searched again
    worst = int(np.argmax(distances))
    assert distances[worst] == pytest.approx(exact.max(), rel=1e-5)
    assert worst == int(np.argmax(exact))
    assert np.all(distances >= exact - 1e-4)  # still upper bounds everywhere
    np.testing.assert_allclose(
        np.linalg.norm(queries - bank[indices], axis=1), distances, rtol=1e-4)
