"""A runtime bundle as bytes, so it travels to each Ray worker once (``ray.put``).

The payload carries every file of the bundle folder (``bundle.json``, the tensors, the reference
images, ``onnx/``) and a digest over them. On the worker ``materialise`` checks the digest, writes
the files to a private folder and ``RuntimeModel.load`` then checks each file's hash and the
reference scores exactly as on an edge box: a worker never scores with a bundle it has not
verified.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from defectscope.errors import BundleError
from defectscope.runtime.engine import EXPORT_JSON, ONNX_DIR, ONNX_FILE


@dataclass(frozen=True)
class BundlePayload:
    """The files of one bundle folder (relative POSIX path -> bytes) and their digest."""

    name: str
    files: tuple[tuple[str, bytes], ...]
    digest: str

    @property
    def size(self) -> int:
        return sum(len(data) for _, data in self.files)


def _digest(files: tuple[tuple[str, bytes], ...]) -> str:
    digest = hashlib.sha256()
    for rel, data in files:
        digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def pack_bundle(model_dir: str | os.PathLike[str]) -> BundlePayload:
    """Read a bundle folder with its ONNX export; one without an export is a ``BundleError``."""
    model_dir = Path(model_dir)
    if not (model_dir / "bundle.json").is_file():
        raise BundleError(f"{model_dir}: not a model folder (no bundle.json)")
    onnx = model_dir / ONNX_DIR
    if not (onnx / ONNX_FILE).is_file() or not (onnx / EXPORT_JSON).is_file():
        raise BundleError(f"{model_dir}: not exported to ONNX, which batch runs on the workers; "
                          f"create it with: defectscope export --model {model_dir}")
    files = tuple((path.relative_to(model_dir).as_posix(), path.read_bytes())
                  for path in sorted(model_dir.rglob("*")) if path.is_file())
    return BundlePayload(model_dir.name or "model", files, _digest(files))


def materialise(payload: BundlePayload, root: str | os.PathLike[str] | None = None) -> Path:
    """Write the payload under ``root`` (a temporary folder by default), digest checked first."""
    if _digest(payload.files) != payload.digest:
        raise BundleError(f"{payload.name}: bundle bytes changed in transit (digest mismatch)")
    base = Path(root) if root is not None else Path(tempfile.gettempdir()) / "defectscope-bundles"
    target = base / payload.digest[:16] / payload.name
    if not (target / "bundle.json").is_file():
        base.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=base))
        for rel, data in payload.files:
            path = staging / payload.name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staging / payload.name, target)  # atomic: workers on one node may race
        except OSError:
            if not (target / "bundle.json").is_file():
                raise
    return target
