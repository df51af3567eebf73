"""Batch re-inspection on Ray: the torch-free runtime on Ray workers, results to Parquet or the
results log. Nothing here imports torch (the workers are edge-box installs plus ``ray``).

>>> summary = run_batch(BatchConfig(models=("models/tiles",), inputs=("archive/",)))  # doctest: +SKIP
>>> summary.images, summary.throughput                                                 # doctest: +SKIP
"""

from defectscope.distributed.batch import BatchConfig, BatchSummary, run_batch
from defectscope.distributed.cluster import ClusterConfig
from defectscope.distributed.transfer import BundlePayload, pack_bundle

__all__ = ["BatchConfig", "BatchSummary", "BundlePayload", "ClusterConfig", "pack_bundle",
           "run_batch"]
