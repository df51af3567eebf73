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
``coreset_ratio`` of its patches (the model's own ``StreamingCoreset``), then the driver runs
greedy k-center on the union U of the shard coresets down to the one-machine bank size k
(``coreset_ratio`` of all patches, at most ``max_bank``). What that guarantees, with P all
patches, P_s shard s's patches, C_s its coreset (k_s points) and C the bank, r(X, Y) the covering
radius max_{x in X} d(x, Y) and OPT_j(X) the smallest radius of j balls (centres anywhere)
that cover X (so OPT_j(X) <= OPT_j(P) for X in P, and it shrinks as j grows):

- Triangle inequality: a patch p of shard s has a c in C_s with d(p, c) <= r(P_s, C_s), and c
  has a bank point within r(U, C), so r(P, C) <= max_s r(P_s, C_s) + r(U, C).
- Union stage: greedy k-center is a 2-approximation on the set it runs on, r(U, C) <=
  2 OPT_k(U); and because greedy's k centres plus the farthest remaining point are k + 1 points
  of P pairwise at least r(U, C) apart, also r(U, C) <= 2 OPT_k(P).
- Shard stage: r(P_s, C_s) <= 2 OPT_{k_s}(P_s), a bound at the shard's own budget k_s. When
  k_s >= k (``oversample`` >= ``shards``) that is <= 2 OPT_k(P), and then the bank is
  within 4 OPT_k(P) (the two-round distributed k-center bound, Malkomes et al., 2015). With the
  default (4 shards, oversample 2: k_s ~ k/2) the honest statement is
  r(P, C) <= max_s 2 OPT_{k_s}(P_s) + 2 OPT_k(P).

Caveats: (1) the shard stage is itself chunked (``coreset_chunk`` patches per greedy run, as a
one-machine fit is), so its term is the max over chunks of 2 OPT at each chunk's budget, not of
the whole shard; a one-machine fit has exactly that chunk term and no union term, so the sharded
bank's bound is the one-machine bound (at ``oversample`` x the budget) plus 2 OPT_k(P); (2) a
bank reduced to ``max_bank`` adds one more such stage; (3) distances are measured in a random
projection to 64 dimensions (``greedy_coreset``), so the bounds hold for projected distances.
These are worst-case radii; what the bank does for detection is measured
(``benchmarks/sharded_fit.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

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
    seconds: float  # the whole sharded fit, starting Ray included
    shard_sizes: tuple[int, ...]
    startup_seconds: float = 0.0  # of which connecting to (or starting) Ray
    merge_seconds: float = 0.0  # and merging on the driver (PatchCore: the union stage)


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


def _load(path: str, sha256: str | None):
    """An image read where it lies, checked against its manifest's sha256 when there is one."""
    from defectscope.data.image_io import load_image
    from defectscope.data.stream import load_verified

    return load_image(path) if sha256 is None else load_verified(path, sha256)


def _fit_shard(model_name: str, options: dict[str, Any], images: list[tuple[str, str | None]],
               preprocess: dict[str, Any], oversample: float) -> dict[str, Any]:
    """The Ray task body: the model's own streaming fit over one shard's images."""
    from defectscope.data.stream import stream_images
    from defectscope.models.registry import create_model

    model = create_model(model_name, **options)
    model.preprocessor.restore(preprocess)
    stream = stream_images(images, lambda item: _load(*item))
    return model.partial_fit((image for _, image in stream), oversample=oversample)


def shardable(model) -> bool:
    """Whether ``model`` can be fitted in shards (it merges shard states: PatchCore, PaDiM)."""
    from defectscope.models.anomaly_base import AnomalyModel

    hook = getattr(type(model), "_partial_state", None)
    return hook is not None and hook is not AnomalyModel._partial_state


def fit_sharded(model, images: Sequence[tuple[str, str | None]], config: ShardedFitConfig,
                log: Callable[[str], None] = lambda message: None) -> ShardedFitSummary:
    """Fit ``model`` (PatchCore or PaDiM, unfitted) on ``images`` ((path, sha256 or None)) in
    ``config.shards`` Ray tasks; the model is fitted in place, as by ``model.fit``."""
    if not shardable(model):
        raise ConfigError(f"{getattr(model, 'name', type(model).__name__)} cannot be fitted in "
                          "shards (patchcore and padim can)")
    images = list(images)
    parts = split_shards(images, config.shards)
    start = time.perf_counter()
    if model.preprocessor.needs_fit:  # learned once, here, from the first images
        model.preprocessor.fit([_load(p, s) for p, s in images[:N_LEARN]])
    preprocess = model.preprocessor.arrays()
    options = model.config.to_dict()
    ray = require_ray()
    connecting = time.perf_counter()
    started = connect(config.cluster)
    startup = time.perf_counter() - connecting
    try:
        task = ray.remote(num_cpus=config.cluster.threads,
                          max_retries=config.max_retries)(_fit_shard)
        preprocess_ref = ray.put(preprocess)
        pending = {task.remote(model.name, options, part, preprocess_ref, config.oversample): i
                   for i, part in enumerate(parts)}
        log(f"fitting {model.name} in {len(parts)} shards of "
            f"{', '.join(str(len(p)) for p in parts)} images on Ray")
        partials: list[Any] = [None] * len(parts)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index = pending.pop(ref)
                partials[index] = ray.get(ref)
                log(f"shard {index + 1}/{len(parts)} done "
                    f"({time.perf_counter() - start:.1f} s)")
    finally:
        shutdown(started)
    merging = time.perf_counter()
    model.fit_from_partials(partials)
    merge = time.perf_counter() - merging
    return ShardedFitSummary(len(parts), len(images), time.perf_counter() - start,
                             tuple(len(p) for p in parts), startup, merge)
