"""Inspect image files with a loaded bundle: one JSON-ready row per image, fail-safe.

An image that cannot be read or scored is never OK: its row says UNSURE with the error, and the
next image is inspected as usual.

>>> for row in inspect_paths(load_bundle("model"), iter_image_paths(["parts/"])):  # doctest: +SKIP
...     print(row["path"], row["verdict"], row["score"])
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from defectscope.data.images import IMAGE_EXTENSIONS, load_image
from defectscope.errors import DataError, DefectscopeError
from defectscope.types import Verdict
from defectscope.visualize import overlay_heatmap, write_rgb_png


def iter_image_paths(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given, and the image files directly inside each folder (sorted by name)."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                           and not p.name.startswith("."))
            if not found:
                raise DataError(f"{path}: folder has no image files "
                                f"({', '.join(sorted(IMAGE_EXTENSIONS))})")
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    return paths


def _heatmap_name(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    return f"{path.stem}_{digest}_heatmap.png"


def inspect_paths(bundle, paths: Sequence[Path], heatmap_dir: Path | None = None, *,
                  template: np.ndarray | None = None) -> Iterator[dict]:
    """Rows as the module says; ``template`` is the defect-free part a reference model compares
    each image with. With ``heatmap_dir``, anomaly maps (or a detection model's boxes) are drawn
    over each image there."""
    model = bundle.model
    if heatmap_dir is not None:
        heatmap_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        row = {"path": str(path), "verdict": Verdict.UNSURE.value, "score": None,
               "threshold": model.threshold, "model_version": bundle.model_version,
               "error": None}
        try:
            image = load_image(path)
            result = model.predict(image) if template is None else model.predict(image, template)
        except DefectscopeError as error:
            row["error"] = str(error)
            row["reason"] = "image could not be inspected"
            yield row
            continue
        row.update(result.to_dict())
        row["error"] = None
        if heatmap_dir is not None and result.anomaly_map is not None:
            target = heatmap_dir / _heatmap_name(path)
            write_rgb_png(target, overlay_heatmap(image, result.anomaly_map, 2 * model.threshold))
            row["heatmap"] = str(target)
        elif heatmap_dir is not None and result.detections:
            from defectscope.evaluation.detection_plots import draw_boxes

            target = heatmap_dir / _heatmap_name(path).replace("_heatmap", "_boxes")
            write_rgb_png(target, draw_boxes(image, (), result.detections))
            row["heatmap"] = str(target)
        yield row
