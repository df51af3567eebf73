"""Nearest-neighbour index: exact answers for small banks, near-exact HNSW, lossless round trip."""

import numpy as np
import pytest

from defectscope.scoring.nn_index import NearestNeighbours


def brute_force(bank, queries, k):
    squared = ((queries[:, None, :] - bank[None, :, :]) ** 2).sum(-1)
    order = np.argsort(squared, axis=1, kind="stable")[:, :k]
    return np.sqrt(np.take_along_axis(squared, order, axis=1)), order


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((800, 24)).astype(np.float32), rng.standard_normal((64, 24)).astype(np.float32)


@pytest.mark.parametrize("k", [1, 5])
def test_exact_matches_brute_force(data, k):
    bank, queries = data
    index = NearestNeighbours.from_bank(bank)
    assert index.exact and index.size == 800
    distances, indices = index.search(queries, k)
    expected_d, expected_i = brute_force(bank.astype(np.float64), queries.astype(np.float64), k)
    np.testing.assert_array_equal(indices, expected_i)
    np.testing.assert_allclose(distances, expected_d, rtol=1e-4, atol=1e-4)


def test_more_neighbours_than_rows_are_padded():
    bank = np.eye(3, dtype=np.float32)
    distances, indices = NearestNeighbours.from_bank(bank).search(bank, 5)
    assert indices[:, 0].tolist() == [0, 1, 2]
    assert (indices[:, 3:] == -1).all() and np.isinf(distances[:, 3:]).all()


def test_hnsw_finds_the_nearest_neighbour_on_clustered_data():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((50, 16)) * 10
    bank = (centres[rng.integers(0, 50, 3000)] + rng.standard_normal((3000, 16))).astype(np.float32)
    queries = (centres[rng.integers(0, 50, 200)] + rng.standard_normal((200, 16))).astype(np.float32)
    index = NearestNeighbours.from_bank(bank, exact_limit=1000)
    assert not index.exact
    distances, _ = index.search(queries, 1)
    expected, _ = brute_force(bank.astype(np.float64), queries.astype(np.float64), 1)
    assert np.mean(distances[:, 0] <= expected[:, 0] * 1.01 + 1e-4) >= 0.95


@pytest.mark.parametrize("exact_limit", [10_000, 100])  # exact, then HNSW
def test_serialise_round_trip_is_identical(data, exact_limit):
    bank, queries = data
    index = NearestNeighbours.from_bank(bank, exact_limit=exact_limit)
    array = index.to_array()
    assert array.dtype == np.uint8 and array.ndim == 1
    restored = NearestNeighbours.from_array(array)
    assert restored.size == index.size and restored.exact == index.exact
    for a, b in zip(index.search(queries, 3), restored.search(queries, 3)):
        np.testing.assert_array_equal(a, b)
