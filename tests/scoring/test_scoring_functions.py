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


def test_patchcore_image_score_is_the_mean_of_the_worst_patches(rng):
    bank = rng.standard_normal((300, 8)).astype(np.float32)
    embeddings = rng.standard_normal((1, 8, 4, 5)).astype(np.float32)
    index = NearestNeighbours.from_bank(bank)
    _, neighbours = index.search(bank, 3)
    grid, worst_only = patchcore_scores(embeddings, index, bank, neighbours, top_fraction=0.0)
    _, top_four = patchcore_scores(embeddings, index, bank, neighbours, top_fraction=0.2)
    weight = worst_only / grid.max()  # the same re-weighting applies to both
    expected = np.sort(grid.ravel())[-4:].mean() * weight  # 0.2 of 20 patches
    assert top_four == pytest.approx(expected, rel=1e-5)
    assert top_four < worst_only


def test_two_scale_map_measures_the_fine_half_against_the_jointly_nearest_entry(rng):
    from defectscope.scoring.heads import build_scorer

    bank = rng.standard_normal((300, 8)).astype(np.float32)
    index = NearestNeighbours.from_bank(bank)
    _, neighbours = index.search(bank, 3)
    embeddings = rng.standard_normal((1, 8, 4, 5)).astype(np.float32)
    joint, joint_score = patchcore_scores(embeddings, index, bank, neighbours)
    grid, score = patchcore_scores(embeddings, index, bank, neighbours, map_dims=4)
    patches = embeddings[0].transpose(1, 2, 0).reshape(-1, 8).astype(np.float64)
    nearest = np.sqrt(((patches[:, None] - bank[None]) ** 2).sum(-1)).argmin(1)
    expected = np.linalg.norm(patches[:, :4] - bank[nearest, :4], axis=1).reshape(4, 5)
    np.testing.assert_allclose(grid, expected, rtol=1e-4, atol=1e-4)
    assert grid.dtype == np.float32
    assert np.all(grid <= joint + 1e-5) and not np.allclose(grid, joint)
    assert score == pytest.approx(joint_score)  # the image score stays the joint distance's
    arrays = {"nn_index": index.to_array(), "memory_bank": bank, "bank_neighbours": neighbours}
    saved = build_scorer("patchcore", arrays, {"context_downscale": 2})(embeddings)[0]
    np.testing.assert_allclose(saved, grid, rtol=1e-5)


def test_top_mean_damps_a_lone_outlier_but_keeps_an_extended_defect():
    from defectscope.scoring.patchcore import top_mean

    lone = np.zeros((10, 10))
    lone[3, 3] = 5.0
    extended = np.zeros((10, 10))
    extended[2:6, 2:6] = 3.0
    assert lone.max() > extended.max()
    assert top_mean(extended, 0.1) > top_mean(lone, 0.1)
    assert top_mean(lone, 0.0) == 5.0
    assert top_mean(np.array([1.0]), 0.5) == 1.0  # at least one patch


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


def test_a_bundle_saved_before_top_fraction_scores_by_its_worst_patch(rng):
    from defectscope.scoring.heads import build_scorer

    bank = rng.standard_normal((300, 8)).astype(np.float32)
    index = NearestNeighbours.from_bank(bank)
    _, neighbours = index.search(bank, 3)
    arrays = {"nn_index": index.to_array(), "memory_bank": bank, "bank_neighbours": neighbours}
    embeddings = rng.standard_normal((1, 8, 4, 5)).astype(np.float32)
    old = build_scorer("patchcore", arrays, {})(embeddings)[1]
    new = build_scorer("patchcore", arrays, {"top_fraction": 0.2})(embeddings)[1]
    assert old == pytest.approx(patchcore_scores(embeddings, index, bank, neighbours)[1])
    assert new < old
