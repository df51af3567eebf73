"""``run_batch``: re-inspect an archive of images with one or more exported bundles on Ray.

The driver packs each bundle once (``ray.put``: one copy per node's object store), splits the
images into chunks and submits one Ray task per chunk. A task that dies with its worker (killed,
out of memory, node lost) is retried by Ray (``max_retries``); rows carry idempotent part ids
(image content sha256 + model version), so a retried chunk or a rerun never writes a part twice:
the rows are deduplicated before Parquet is written and the results log skips parts it already
holds.

>>> run_batch(BatchConfig(models=("models/a", "models/b"), inputs=("archive/",),
...                       out="results.parquet"))                        # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from defectscope.distributed.cluster import ClusterConfig, connect, require_ray, shutdown
from defectscope.distributed.transfer import BundlePayload, materialise, pack_bundle
from defectscope.errors import ConfigError, DataError

BACKENDS = ("onnxruntime",)
_CACHE: dict[tuple[str, int], Any] = {}  # per worker process: digest -> verified runtime


@dataclass(frozen=True)
class BatchConfig:
    """One batch run. ``inputs``: folders of images or manifest JSON files; ``models``: exported
    bundle folders (two or more: every image is scored by each and their verdicts compared)."""

    models: tuple[str, ...]
    inputs: tuple[str, ...]
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    out: str | None = None
    db: str | None = None
    backend: str = "onnxruntime"
    chunk_size: int = 16
    max_retries: int = 3
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("batch needs at least one --model")
        if not self.inputs:
            raise ConfigError("batch needs --input (a folder of images or a manifest)")
        if self.backend not in BACKENDS:
            raise ConfigError(f"batch runs the torch-free runtime on its workers: --backend "
                              f"must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.chunk_size < 1 or self.max_retries < 0:
            raise ConfigError("chunk_size must be >= 1 and max_retries >= 0")


@dataclass(frozen=True)
class BatchSummary:
    """What a run did: rows (deduplicated), seconds, failures, and the models' disagreements."""

    images: int
    rows: tuple[dict[str, Any], ...]
    seconds: float
    failures: int
    written_to_db: int = 0
    already_in_db: int = 0
    comparison: dict[str, Any] | None = None
    first_chunk_seconds: float = 0.0  # until the first chunk came back: start-up and loading
    first_chunk_images: int = 0

    @property
    def steady_throughput(self) -> float:
        """Images per second after the first chunk came back (workers started, bundles loaded)."""
        seconds = self.seconds - self.first_chunk_seconds
        return (self.images - self.first_chunk_images) / seconds if seconds > 0 else float("inf")

    @property
    def throughput(self) -> float:
        """Images per second over the whole run (bundle transfer and model loading included)."""
        return self.images / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "rows": len(self.rows), "seconds": self.seconds,
                "throughput": self.throughput, "steady_throughput": self.steady_throughput,
                "failures": self.failures,
                "written_to_db": self.written_to_db, "already_in_db": self.already_in_db,
                "comparison": self.comparison}


def collect_paths(inputs: Sequence[str]) -> list[str]:
    """Image paths from folders (recursively, sorted) and manifest files (their samples)."""
    from defectscope.data.image_io import IMAGE_EXTENSIONS
    from defectscope.data.images.manifest import Manifest

    paths: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file()
                           and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
            if not found:
                raise DataError(f"{path}: folder has no image files")
            paths.extend(str(p) for p in found)
        elif path.is_file():
            manifest = Manifest.load(path)
            paths.extend(str(manifest.path_of(sample)) for sample in manifest.samples)
        else:
            raise DataError(f"{path}: no such folder or manifest")
    return paths


def _names(models: Sequence[str]) -> list[str]:
    names = [Path(m).name or "model" for m in models]
    return [f"{i}-{n}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def _score_chunk(paths: list[str], names: list[str], threads: int, digests: list[str],
                 payload_refs: list[Any]) -> list[dict[str, Any]]:
    """The Ray task body: verified runtimes (cached per worker process), then the rows.

    ``payload_refs`` arrive nested in a list, so Ray does not fetch them for every task: a
    worker fetches a bundle's bytes only the first time it meets that bundle's digest.
    """
    import ray

    from defectscope.distributed.worker import load_runtime, score_paths

    models = []
    for name, digest, ref in zip(names, digests, payload_refs):
        key = (digest, threads)
        if key not in _CACHE:
            _CACHE[key] = load_runtime(materialise(ray.get(ref)), threads)
        models.append((name, _CACHE[key]))
    return score_paths(models, paths)


def compare(rows: Sequence[dict[str, Any]], names: Sequence[str], limit: int = 20
            ) -> dict[str, Any]:
    """Where the models disagree, per image: counts of each verdict pair and some examples."""
    by_image: dict[str, dict[str, str]] = {}
    for row in rows:
        by_image.setdefault(row["path"], {})[row["model"]] = row["verdict"]
    pairs: Counter = Counter()
    examples = []
    for path, verdicts in sorted(by_image.items()):
        key = " / ".join(verdicts.get(name, "missing") for name in names)
        pairs[key] += 1
        if len(set(verdicts.get(name) for name in names)) > 1 and len(examples) < limit:
            examples.append({"path": path, **{name: verdicts.get(name) for name in names}})
    disagree = sum(n for key, n in pairs.items() if len(set(key.split(" / "))) > 1)
    return {"models": list(names), "parts": len(by_image), "disagree": disagree,
            "agreement": 1 - disagree / len(by_image) if by_image else 1.0,
            "verdict_pairs": dict(sorted(pairs.items())), "examples": examples}


def write_parquet(rows: Sequence[dict[str, Any]], out: str | Path) -> Path:
    """Rows to Parquet; nested fields (detections, timings) as JSON text columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    nested = ("detections", "timings_ms")
    table = [{k: (json.dumps(v) if k in nested else v) for k, v in row.items()} for row in rows]
    columns = sorted({key for row in table for key in row})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(table, schema=None).select(columns)
                   if table else pa.table({}), out)
    return out


def write_db(rows: Sequence[dict[str, Any]], url: str) -> tuple[int, int]:
    """Rows into the results log (line ``batch``); parts already there are skipped, not
    duplicated. Returns (written, already there)."""
    from defectscope.store.results import DuplicatePartError, ResultStore
    from defectscope.values import PartResult, Verdict

    store = ResultStore(url)
    written = skipped = 0
    try:
        for row in rows:
            if store.get_by_part(row["part_id"]) is not None:
                skipped += 1
                continue
            result = PartResult(
                part_id=row["part_id"], timestamp=time.time(), verdict=Verdict(row["verdict"]),
                score=row["score"], threshold=row["threshold"],
                model_version=row["model_version"], dataset_version=row["dataset_version"],
                line="batch", source=row["path"],
                defect_types=(row["defect_type"],) if row.get("defect_type") else (),
                timings=row.get("timings_ms") or {}, reason=row.get("reason") or row["error"],
                image_sha256=row["image_sha256"])
            try:
                store.add(result)
                written += 1
            except DuplicatePartError:  # another writer logged it since the check
                skipped += 1
    finally:
        store.close()
    return written, skipped


def run_batch(config: BatchConfig,
              on_chunk: Callable[[int, int], None] | None = None) -> BatchSummary:
    """Score every image with every model on Ray; ``on_chunk(done, total)`` after each chunk."""
    from tqdm import tqdm

    paths = collect_paths(config.inputs)
    payloads = [pack_bundle(model) for model in config.models]
    versions = [p.digest for p in payloads]
    if len(set(versions)) < len(versions):
        raise ConfigError("the same model was given twice to --model")
    names = _names(config.models)
    ray = require_ray()
    started = connect(config.cluster)
    start = time.perf_counter()
    try:
        task = ray.remote(num_cpus=config.cluster.threads,
                          max_retries=config.max_retries)(_score_chunk)
        refs = [ray.put(p) for p in payloads]
        chunks = [paths[i:i + config.chunk_size] for i in range(0, len(paths), config.chunk_size)]
        pending = {task.remote(chunk, names, config.cluster.threads, versions, refs): len(chunk)
                   for chunk in chunks}
        rows: dict[str, dict[str, Any]] = {}
        first_seconds, first_images = 0.0, 0
        with tqdm(total=len(paths), unit="img", disable=not config.progress,
                  desc="batch") as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    for row in ray.get(ref):
                        rows.setdefault(row["part_id"], row)
                    done = pending.pop(ref)
                    bar.update(done)
                    if not first_images:
                        first_seconds, first_images = time.perf_counter() - start, done
                    if on_chunk is not None:
                        on_chunk(len(chunks) - len(pending), len(chunks))
    finally:
        shutdown(started)
    seconds = time.perf_counter() - start
    ordered = tuple(sorted(rows.values(), key=lambda r: (r["path"], r["model"])))
    written = skipped = 0
    if config.out:
        write_parquet(ordered, config.out)
    if config.db:
        written, skipped = write_db(ordered, config.db)
    return BatchSummary(
        images=len(paths), rows=ordered, seconds=seconds,
        failures=sum(row["error"] is not None for row in ordered),
        written_to_db=written, already_in_db=skipped,
        comparison=compare(ordered, names) if len(names) > 1 else None,
        first_chunk_seconds=first_seconds, first_chunk_images=first_images)
