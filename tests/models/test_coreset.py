"""Greedy k-center coreset: distinct picks, better coverage than random, bounded streaming bank."""

import pytest
import torch

from defectscope.models.coreset import StreamingCoreset, greedy_coreset


def clustered(n_clusters=20, per_cluster=50, dims=8, seed=0):
    """Tight, unevenly sized clusters far apart: random picks miss the small ones."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_clusters, dims, generator=g) * 20
    sizes = [per_cluster * 8 if i < 2 else per_cluster // 5 for i in range(n_clusters)]
    return torch.cat([c + 0.1 * torch.randn(s, dims, generator=g) for c, s in zip(centres, sizes)])


def covering_radius(points, chosen):
    """The largest distance from any point to its nearest chosen point."""
    return torch.cdist(points, points[chosen]).min(1).values.max().item()


def test_selected_points_are_distinct_and_in_range():
    points = torch.randn(500, 16, generator=torch.Generator().manual_seed(1))
    chosen = greedy_coreset(points, 50, seed=0)
    assert chosen.shape == (50,)
    assert len(set(chosen.tolist())) == 50
    assert 0 <= int(chosen.min()) and int(chosen.max()) < 500


def test_edge_sizes():
    points = torch.randn(10, 4)
    assert greedy_coreset(points, 0).numel() == 0
    assert sorted(greedy_coreset(points, 10).tolist()) == list(range(10))
    assert sorted(greedy_coreset(points, 99).tolist()) == list(range(10))


@pytest.mark.parametrize("dims", [8, 128])  # 128 > projection_dim: selection in a projection
def test_greedy_covers_clustered_data_better_than_random(dims):
    points = clustered(dims=dims)
    k = 20  # one per cluster is possible
    greedy = covering_radius(points, greedy_coreset(points, k, seed=0))
    g = torch.Generator().manual_seed(0)
    random_radii = [covering_radius(points, torch.randperm(len(points), generator=g)[:k])
                    for _ in range(5)]
    assert greedy <= min(random_radii)
    assert greedy < 5.0  # every cluster got a point (clusters are ~20 apart, ~0.1 wide)


def test_selection_is_reproducible():
    points = torch.randn(300, 8)
    assert torch.equal(greedy_coreset(points, 30, seed=3), greedy_coreset(points, 30, seed=3))


def test_streaming_bank_size_follows_the_ratio():
    coreset = StreamingCoreset(ratio=0.1, chunk_size=1000, max_bank=10_000, seed=0)
    g = torch.Generator().manual_seed(0)
    for _ in range(23):  # 23 batches of 370 rows: chunks fill up at uneven places
        coreset.add(torch.randn(370, 12, generator=g))
    bank = coreset.finish()
    assert coreset.n_seen == 23 * 370
    assert abs(bank.shape[0] - 0.1 * coreset.n_seen) <= 0.01 * coreset.n_seen
    assert bank.shape[1] == 12


def test_streaming_respects_max_bank():
    coreset = StreamingCoreset(ratio=0.5, chunk_size=500, max_bank=300, seed=0)
    for _ in range(6):
        coreset.add(torch.randn(400, 6))
    bank = coreset.finish()
    assert bank.shape[0] == 300


def test_streaming_without_rows_fails():
    with pytest.raises(ValueError):
        StreamingCoreset(ratio=0.1).finish()
