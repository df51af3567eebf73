"""What a Ray worker does, as plain functions (the benchmark's single-process loop runs the same).

``load_runtime`` verifies a bundle (``RuntimeModel.load``: hashes and reference scores) on a set
number of threads; ``score_paths`` gives one row per (image, model) with the fields of
``predict --json`` plus the idempotent ``part_id``. Never imports torch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

from defectscope.data.hashing import sha256_file
from defectscope.data.image_io import load_image
from defectscope.errors import DefectscopeError
from defectscope.runtime.engine import RuntimeModel
from defectscope.values import Verdict


def part_id(image_sha256: str, model_version: str) -> str:
    """The idempotent id of one image scored by one model: a rerun or a retried task gives the
    same id, so the row is written once (content hash, not path: a moved archive keeps its ids)."""
    return f"{image_sha256}:{model_version}"


def load_runtime(model_dir: str | Path, threads: int = 1) -> RuntimeModel:
    """The verified runtime of an exported bundle on ``threads`` threads: the backend's session
    (onnxruntime ignores ``OMP_NUM_THREADS``; its default of one thread per core oversubscribes a
    node that runs one worker per core) and faiss's search."""
    model = RuntimeModel.load(model_dir, threads=threads)
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:  # pragma: no cover - faiss is a core dependency
        pass
    return model


def score_paths(models: Sequence[tuple[str, RuntimeModel]], paths: Sequence[str]
                ) -> list[dict[str, Any]]:
    """One row per image and model; an image that cannot be read or scored is UNSURE with the
    error (never OK), as in ``predict``."""
    rows = []
    for path in paths:
        try:
            sha, image, failure = sha256_file(path), load_image(path), None
        except (OSError, DefectscopeError) as error:
            sha, image, failure = None, None, str(error)
        for name, model in models:
            row: dict[str, Any] = {
                "path": str(path), "model": name, "verdict": Verdict.UNSURE.value,
                "score": None, "threshold": model.threshold,
                "model_version": model.model_version, "dataset_version": model.dataset_version,
                "image_sha256": sha, "error": failure}
            row["part_id"] = part_id(sha or "path-" + hashlib.sha256(
                str(path).encode()).hexdigest()[:32], model.model_version)
            if image is not None:
                try:
                    row.update(model.predict(image).to_dict())
                except DefectscopeError as error:
                    row["error"] = str(error)
            if row["error"] is not None:
                row["reason"] = "image could not be inspected"
            rows.append(row)
    return rows
