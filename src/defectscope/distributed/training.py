"""Fitting PatchCore or PaDiM on Ray: the training images in shards, one Ray task per shard.

Each task builds the model from the same options and runs the model's own streaming fit
(``AnomalyModel.partial_fit``: the same preprocessing, backbone and embedding code as a
one-machine ``fit``) over its shard's images, read where they lie and checked against their
sha256; the driver merges the shards' states (``fit_from_partials``) and the result saves as
the same bundle as a one-machine fit. The preprocessor's learned state (an alignment reference,
a histogram) is learned once on the driver from the first images, as a one-machine fit does, and
sent to every shard.

PaDiM: each shard returns its count, per-position sum and sum of outer products (float64); their
sums are the one-machine sums, so the merged mean and covariance equal the one-machine ones to
float64 rounding (tested).

PatchCore, two-stage greedy k-center: each shard keeps a coreset of ``oversample`` x
``coreset_ratio`` of its patches (``StreamingCoreset``), then the driver runs greedy k-center on
the union of the shard coresets down to the one-machine bank size k (``coreset_ratio`` of all
patches, at most ``max_bank``). What that guarantees, with P all patches, C_s shard s's coreset,
U their union and C the bank: for a patch p of shard s, d(p, C) <= d(p, C_s) + d(c, C) for its
nearest c in C_s, so the covering radius r(P, C) <= max_s r(P_s, C_s) + r(U, C). Greedy k-center
is a 2-approximation for the set it runs on, with the budget it has: r(U, C) <= 2 OPT_k(U), and
since U is a subset of P (greedy's k + 1 mutually far points all lie in P), also <= 2 OPT_k(P).
A shard stage that picks at least k centres from P_s likewise has r(P_s, C_s) <= 2 OPT_k(P), so
the two stages together stay within 4 OPT_k(P) (the known bound of two-round distributed
k-center, Malkomes et al., 2015). Caveats, stated honestly: (1) the shard stage is itself chunked
(``coreset_chunk`` patches per greedy run, as a one-machine fit is) and a chunk's budget is its
share of ``oversample`` x ``coreset_ratio``, smaller than k, so its term is 2 OPT_{k_chunk}(chunk)
(a looser radius at a smaller budget), not 2 OPT_k(P); (2) distances are measured in a random
projection to 64 dimensions, so the bounds hold for projected distances. The one-machine fit has
the same chunk caveat, so the sharded bank's guarantee is the one-machine one plus the union
stage's 2 OPT_k(U) term.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from defectscope.distributed.cluster import ClusterConfig, connect, require_ray, shutdown
from defectscope.errors import ConfigError, DataError

N_LEARN = 16  # images the preprocessor learns its state from (as tiling.training_inputs)


@dataclass(frozen=True)
class ShardedFitConfig:
    """``shards`` Ray tasks over contiguous slices of the training images; ``oversample``: how
    many times its share of the bank a PatchCore shard keeps for the union stage."""

    shards: int = 4
    oversample: float = 2.0
    cluster: ClusterConfig = field(
        default_factory=lambda: ClusterConfig(object_store_bytes=1024 * 1024 * 1024))
    max_retries: int = 2

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ConfigError(f"shards must be >= 1, got {self.shards}")
        if self.oversample < 1:
            raise ConfigError(f"oversample must be >= 1, got {self.oversample}")
        if self.max_retries < 0:
            raise ConfigError("max_retries must be >= 0")


@dataclass(frozen=True)
class ShardedFitSummary:
    shards: int
    images: int
    seconds: float
    shard_sizes: tuple[int, ...]


def split_shards(items: Sequence[Any], shards: int) -> list[list[Any]]:
    """Contiguous, near-equal slices, in order (so shard 0 starts with the first images)."""
    if not items:
        raise DataError("no training images to fit on")
    shards = min(shards, len(items))
    size, extra = divmod(len(items), shards)
    out, start = [], 0
    for i in range(shards):
        end = start + size + (i < extra)
        out.append(list(items[start:end]))
        start = end
    return out


def _fit_shard(model_name: str, options: dict[str, Any], images: list[tuple[str, str | None]],
               preprocess: dict[str, Any], oversample: float) -> dict[str, Any]:
    """The Ray task body: the model's own streaming fit over one shard's images."""
    from defectscope.data.stream import load_verified
    from defectscope.models.registry import create_model

    model = create_model(model_name, **options)
    model.preprocessor.restore(preprocess)
    return model.partial_fit((load_verified(path, sha) for path, sha in images),
                             oversample=oversample)


def fit_sharded(model, images: Sequence[tuple[str, str | None]], config: ShardedFitConfig,
                log=lambda message: None) -> ShardedFitSummary:
    """Fit ``model`` (PatchCore or PaDiM, unfitted) on ``images`` ((path, sha256 or None)) in
    ``config.shards`` Ray tasks; the model is fitted in place, as by ``model.fit``."""
    from defectscope.data.stream import load_verified
    from defectscope.models.base import AnomalyModel

    if type(model)._partial_state is AnomalyModel._partial_state:
        raise ConfigError(f"{model.name} cannot be fitted in shards (PatchCore and PaDiM can)")
    parts = split_shards(list(images), config.shards)
    if model.preprocessor.needs_fit:  # learned once, here, from the first images
        model.preprocessor.fit([load_verified(p, s) for p, s in list(images)[:N_LEARN]])
    preprocess = model.preprocessor.arrays()
    options = model.config.to_dict()
    ray = require_ray()
    started = connect(config.cluster)
    start = time.perf_counter()
    try:
        task = ray.remote(num_cpus=config.cluster.threads,
                          max_retries=config.max_retries)(_fit_shard)
        refs = [task.remote(model.name, options, part, preprocess, config.oversample)
                for part in parts]
        log(f"fitting {model.name} in {len(parts)} shards of {', '.join(str(len(p)) for p in parts)}"
            " images on Ray")
        partials = ray.get(refs)
    finally:
        shutdown(started)
    model.fit_from_partials(partials)
    return ShardedFitSummary(len(parts), sum(len(p) for p in parts),
                             time.perf_counter() - start, tuple(len(p) for p in parts))
