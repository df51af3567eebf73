"""Inspect image files with a loaded bundle: one JSON-ready row per image, fail-safe.

Every image goes through the line's own decision (``defectscope.line.decision.evaluate``), so
``predict`` applies the same fail-safe policy as ``serve`` and ``run``: an image that cannot be
read, is refused by a limit, or breaks the model is never OK; its row says UNSURE or NG with the
reason and the ``failure`` kind, and the next image is inspected as usual.

>>> listing = list_image_paths(["parts/"])                                # doctest: +SKIP
>>> for row in inspect_paths(load_bundle("model"), listing.paths):        # doctest: +SKIP
...     print(row["path"], row["verdict"], row["score"])
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from defectscope.data.image_io import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS
from defectscope.errors import DataError
from defectscope.line.decision import FailSafePolicy, evaluate
from defectscope.line.sources import read_file_frame
from defectscope.visualize import overlay_heatmap, write_rgb_png

@dataclass(frozen=True)
class ImageListing:
    """The files to inspect, and the files in the given folders that are not inspected (why)."""

    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def list_image_paths(inputs: Sequence[str | Path]) -> ImageListing:
    """Files as given, and the image files directly inside each folder (sorted by name); every
    other entry of a folder is listed in ``skipped`` with the reason."""
    paths: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = []
            for entry in sorted(path.iterdir()):
                reason = _skip_reason(entry)
                if reason is None:
                    found.append(entry)
                else:
                    skipped.append((entry, reason))
            if not found:
                raise DataError(f"{path}: folder has no image files "
                                f"({', '.join(sorted(IMAGE_EXTENSIONS))})")
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    return ImageListing(paths, skipped)


def iter_image_paths(inputs: Sequence[str | Path]) -> list[Path]:
    """The files ``list_image_paths`` would inspect."""
    return list_image_paths(inputs).paths


def _skip_reason(entry: Path) -> str | None:
    if entry.name.startswith("."):
        return "hidden file"
    if entry.is_dir():
        return "folder (folders are not searched recursively)"
    if not entry.is_file():
        return "not a regular file"
    if entry.suffix.lower() not in IMAGE_EXTENSIONS:
        kind = entry.suffix.lower() or "no extension"
        return f"{kind} is not an image format read here ({', '.join(sorted(IMAGE_EXTENSIONS))})"
    return None


def _heatmap_name(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    return f"{path.stem}_{digest}_heatmap.png"


class _ModelInspector:
    """The line's ``Inspector`` over a loaded bundle, with an optional reference template."""

    def __init__(self, bundle, template: np.ndarray | None) -> None:
        self.model, self.template = bundle.model, template
        self.model_version = bundle.model_version
        self.dataset_version = bundle.dataset_version
        self.threshold = float(bundle.model.threshold)

    def inspect(self, image: np.ndarray):
        if self.template is None:
            return self.model.predict(image)
        return self.model.predict(image, self.template)


def inspect_paths(bundle, paths: Sequence[Path], heatmap_dir: Path | None = None, *,
                  template: np.ndarray | None = None,
                  policy: FailSafePolicy = FailSafePolicy(),
                  max_pixels: int | None = DEFAULT_MAX_PIXELS,
                  cycle_budget_ms: float | None = None) -> Iterator[dict]:
    """Rows as the module says; ``template`` is the defect-free part a reference model compares
    each image with. With ``heatmap_dir``, anomaly maps (or a detection model's boxes) are drawn
    over each image there. ``error`` is the reason when the inspection failed, else None."""
    inspector = _ModelInspector(bundle, template)
    if heatmap_dir is not None:
        heatmap_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        frame = read_file_frame(path, "predict", max_pixels=max_pixels)
        decision = evaluate(frame, inspector, policy=policy, cycle_budget_ms=cycle_budget_ms,
                            line="predict")
        part, result = decision.part, decision.inspection
        row = {"path": str(path), "threshold": inspector.threshold,
               "model_version": bundle.model_version}
        if result is not None:
            row.update(result.to_dict())
        row.update(verdict=part.verdict.value, score=part.score, reason=part.reason,
                   failure=None if part.failure is None else part.failure.value,
                   error=part.reason if part.failure is not None else None)
        if heatmap_dir is not None and result is not None and frame.image is not None:
            _draw(row, heatmap_dir, path, frame.image, result, inspector.threshold)
        yield row


def _draw(row: dict, heatmap_dir: Path, path: Path, image: np.ndarray, result,
          threshold: float) -> None:
    if result.anomaly_map is not None:
        target = heatmap_dir / _heatmap_name(path)
        write_rgb_png(target, overlay_heatmap(image, result.anomaly_map, 2 * threshold))
        row["heatmap"] = str(target)
    elif result.detections:
        from defectscope.evaluation.detection_plots import draw_boxes

        target = heatmap_dir / _heatmap_name(path).replace("_heatmap", "_boxes")
        write_rgb_png(target, draw_boxes(image, (), result.detections))
        row["heatmap"] = str(target)
