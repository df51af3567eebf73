"""Greedy k-center coreset selection that streams: bounded memory, batched distance updates.

PatchCore keeps a memory bank of normal patch features. Picking it by greedy k-center over *all*
training patches at once costs one pass over every patch per selected point (Anomalib's approach:
minutes to hours on a CPU, gigabytes of memory). Here patches arrive in chunks that fit in cache;
each chunk contributes its own greedy coreset at the requested ratio, so memory holds one chunk plus
the bank, and the work grows linearly with the training set. When the bank outgrows ``max_bank``,
it is reduced by the same greedy selection run over the bank itself.

>>> sel = greedy_coreset(torch.randn(1000, 16), 100, seed=0)
>>> sel.shape
torch.Size([100])
"""

from __future__ import annotations

import math

import torch


def random_projection(dim: int, out_dim: int, seed: int) -> torch.Tensor:
    """A Johnson-Lindenstrauss projection (Gaussian, scaled), reproducible from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(dim, out_dim, generator=generator) / math.sqrt(out_dim)


def greedy_coreset(
    features: torch.Tensor, k: int, seed: int = 0, projection_dim: int = 64
) -> torch.Tensor:
    """Indices of ``k`` rows of ``features`` chosen by greedy k-center (farthest point first).

    Distances are computed in a random projection to ``projection_dim`` dimensions when the
    features are wider, which preserves them approximately and makes each pass cheaper.
    """
    n = features.shape[0]
    if k >= n:
        return torch.arange(n)
    if k <= 0:
        return torch.zeros(0, dtype=torch.long)
    points = features.float()
    if points.shape[1] > projection_dim:
        points = points @ random_projection(points.shape[1], projection_dim, seed)
    squared_norms = (points * points).sum(1)
    start = int(torch.randint(n, (1,), generator=torch.Generator().manual_seed(seed)))
    selected = torch.empty(k, dtype=torch.long)
    min_distance = torch.full((n,), float("inf"))
    index = start
    for i in range(k):
        selected[i] = index
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2, one matrix-vector product per selected point
        distance = squared_norms - 2.0 * torch.mv(points, points[index]) + squared_norms[index]
        torch.minimum(min_distance, distance, out=min_distance)
        index = int(torch.argmax(min_distance))
    return selected


class StreamingCoreset:
    """Accumulates patch features chunk by chunk and keeps only a coreset of each chunk.

    ``ratio`` is the fraction of patches kept; ``chunk_size`` bounds the working memory;
    ``max_bank`` bounds the final bank (reduced by greedy k-center over the bank when exceeded).
    """

    def __init__(
        self, ratio: float, chunk_size: int = 16384, max_bank: int = 200_000, seed: int = 0
    ) -> None:
        self.ratio = ratio
        self.chunk_size = chunk_size
        self.max_bank = max_bank
        self.seed = seed
        self._pending: list[torch.Tensor] = []
        self._pending_rows = 0
        self._kept: list[torch.Tensor] = []
        self._chunks_done = 0
        self.n_seen = 0

    def add(self, features: torch.Tensor) -> None:
        """Add rows (patches x dims); selects from full chunks as soon as they fill up."""
        self._pending.append(features.detach().float().cpu())
        self._pending_rows += features.shape[0]
        self.n_seen += features.shape[0]
        if self._pending_rows >= self.chunk_size:
            self._select_pending()

    def _select_pending(self) -> None:
        if not self._pending:
            return
        chunk = torch.cat(self._pending)
        self._pending, self._pending_rows = [], 0
        k = max(1, int(round(self.ratio * chunk.shape[0])))
        chosen = greedy_coreset(chunk, k, seed=self.seed + self._chunks_done)
        self._kept.append(chunk[chosen].clone())
        self._chunks_done += 1

    def finish(self) -> torch.Tensor:
        """The memory bank: every chunk's coreset, reduced to ``max_bank`` rows if needed."""
        self._select_pending()
        if not self._kept:
            raise ValueError("no features were added")
        bank = torch.cat(self._kept)
        self._kept = [bank]
        if bank.shape[0] > self.max_bank:
            bank = bank[greedy_coreset(bank, self.max_bank, seed=self.seed)]
        return bank
