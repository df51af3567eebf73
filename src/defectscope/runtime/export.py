"""ONNX export of a bundle's network, proven by a parity check (this module needs torch).

Only the network goes into ONNX, with dynamic height and width:
- anomaly models (patchcore, padim): the backbone trunk and the patch embedding (PatchCore's
  neighbourhood pooling, PaDiM's channel selection), output ``embeddings``. The scoring and the
  anomaly map are the numpy functions of ``defectscope.scoring`` that the torch model itself
  calls; the nearest-neighbour search (faiss) has no ONNX form anyway.
- supervised models: the whole network ``model.net_`` with a dynamic batch axis too, output
  ``logits`` (classifier N x C, segmenter N x 1 x H x W). Probabilities, score, verdict, defect
  type and map (with the segmenter's flip averaging) are ``defectscope.scoring``'s again.

Exported models that quietly score differently are the most reported problem with anomaly
export tools, so ``export_onnx`` re-scores every reference image of the bundle through the new
runtime and fails, leaving nothing behind, if any score differs from the recorded one by more than
``tolerance * threshold`` (default 1e-3 of the threshold). It also checks torch against ONNX on
the first reference resized to other aspect ratios (other input sizes), records the maps' largest
difference and, for the classifier, holds every class probability to the same limit (the defect
type depends on them, not on the score alone).

>>> export_onnx("models/tiles")   # writes models/tiles/onnx/{model.onnx,export.json}  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from defectscope.bundle import TENSORS, load_bundle
from defectscope.data.hashing import sha256_file
from defectscope.errors import AlignmentError, BundleError
from defectscope.fileio import staged_folder
from defectscope.runtime.engine import (
    ANOMALY_MODELS,
    DEFAULT_TOLERANCE,
    EXPORT_JSON,
    INPUT_NAME,
    LOGITS_NAME,
    ONNX_DIR,
    ONNX_FILE,
    OUTPUT_NAME,
    SUPPORTED_MODELS,
    ParityError,
    RuntimeModel,
    describe,
    read_references,
)

OPSET = 17
ASPECTS = ((1, 1), (1, 2), (2, 1), (3, 4))  # height:width of the extra input-size checks


class _Embedder(nn.Module):
    """``model._embed(model.extractor_(x))`` as one module, which is what gets exported."""

    def __init__(self, model) -> None:
        super().__init__()
        self.extractor = model.extractor_
        self._embed = model._embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._embed(self.extractor(x))


@dataclass(frozen=True)
class Graph:
    """What goes into the ONNX file for one model: the module, its output and dynamic axes."""

    module: nn.Module
    output_name: str
    input_axes: dict[int, str]
    output_axes: dict[int, str]
    output_layout: str


def network_graph(model) -> Graph:
    """The exported part of ``model``: the embedder of an anomaly model, a supervised network."""
    image_axes = {0: "batch", 2: "height", 3: "width"}
    if model.name in ANOMALY_MODELS:
        return Graph(_Embedder(model), OUTPUT_NAME, {2: "height", 3: "width"},
                     {2: "grid_height", 3: "grid_width"},
                     "1 x D x h' x w' float32 patch embeddings")
    if model.name == "classifier":
        return Graph(model.net_, LOGITS_NAME, image_axes, {0: "batch"},
                     f"N x {len(model.classes_)} float32 class logits, classes "
                     f"{list(model.classes_)}")
    if model.name == "segmenter":
        return Graph(model.net_, LOGITS_NAME, image_axes, image_axes,
                     "N x 1 x H x W float32 defect logits at the input size")
    raise BundleError(f"ONNX export supports {', '.join(SUPPORTED_MODELS)}, not {model.name!r}")


def _export_graph(graph: Graph, example: np.ndarray, path: Path) -> None:
    # The tracer warns that Python shape comparisons become constants: they only pick which
    # stages need resizing, which is the same for every input that is a multiple of 16.
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # onnxscript (for the newer dynamo exporter) is not a dependency; the TorchScript
        # exporter is deprecated but exact here, and the parity check guards it.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            graph.module.eval(), (torch.from_numpy(example[None]),), str(path),
            dynamo=False, opset_version=OPSET, input_names=[INPUT_NAME],
            output_names=[graph.output_name], do_constant_folding=True,
            dynamic_axes={INPUT_NAME: graph.input_axes, graph.output_name: graph.output_axes},
        )


def _map_difference(torch_map: np.ndarray | None, onnx_map: np.ndarray | None) -> float | None:
    """The largest absolute difference of two maps; None for a model without maps."""
    if torch_map is None and onnx_map is None:
        return None
    return float(np.abs(np.asarray(torch_map) - np.asarray(onnx_map)).max())


def _largest(values) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _probability_difference(model, runtime: RuntimeModel, image: np.ndarray) -> float | None:
    """The classifier's largest class-probability difference (torch vs ONNX); None otherwise."""
    if not hasattr(runtime, "probabilities"):
        return None
    expected, got = model.probabilities(image), runtime.probabilities(image)
    if set(expected) != set(got):
        return float("inf")
    return max(abs(expected[name] - got[name]) for name in expected)


def _size_checks(bundle, runtime: RuntimeModel, image: np.ndarray, limit: float) -> list[dict]:
    """Torch vs ONNX scores on ``image`` resized to several aspect ratios (input sizes)."""
    rows, seen = [], set()
    side = bundle.model.preprocess_config.image_size * 2
    for aspect_h, aspect_w in ASPECTS:
        resized = cv2.resize(image, (side * aspect_w // max(aspect_h, aspect_w),
                                     side * aspect_h // max(aspect_h, aspect_w)))
        input_hw = runtime.preprocessor.input_size(resized.shape)
        if input_hw in seen:
            continue
        seen.add(input_hw)
        try:
            expected, torch_map, _ = bundle.model.anomaly(resized)
        except AlignmentError:  # a squashed part need not align; the references did
            continue
        score, onnx_map, _ = runtime.anomaly(resized)
        rows.append({"input_size": list(input_hw), "torch": expected, "onnx": score,
                     "difference": abs(score - expected), "ok": abs(score - expected) <= limit,
                     "map_max_abs_diff": _map_difference(torch_map, onnx_map),
                     "probability_max_abs_diff": _probability_difference(bundle.model, runtime,
                                                                         resized)})
    return rows


def export_onnx(model_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None,
                tolerance: float = DEFAULT_TOLERANCE) -> Path:
    """Export ``model_dir``'s network to ``out_dir`` (default ``model_dir/onnx``) and prove it.

    Raises ``ParityError`` (and writes nothing) if a reference image or a resized one scores
    differently from the torch model by more than ``tolerance * threshold`` (for the classifier:
    or a class probability differs by more). Returns ``out_dir``.
    """
    import onnxruntime

    model_dir = Path(model_dir)
    out_dir = Path(out_dir) if out_dir is not None else model_dir / ONNX_DIR
    bundle = load_bundle(model_dir)
    graph = network_graph(bundle.model)  # an unsupported model -> a clear BundleError
    references = read_references(model_dir, bundle.info)  # none -> a clear BundleError
    with staged_folder(out_dir) as staging:
        onnx_path = staging / ONNX_FILE
        _export_graph(graph, bundle.model.preprocessor(references[0][0]), onnx_path)
        preprocess = bundle.model.preprocess_config.to_dict()  # what the torch model really ran
        runtime = RuntimeModel.from_onnx(model_dir, onnx_path, tolerance, preprocess=preprocess)
        checks = runtime.check_references()
        maps = [_map_difference(bundle.model.anomaly(image)[1], runtime.anomaly(image)[1])
                for image, _, _ in references]
        probabilities = [_probability_difference(bundle.model, runtime, image)
                         for image, _, _ in references]
        limit = checks[0].limit
        sizes = _size_checks(bundle, runtime, references[0][0], limit)
        failed = [c for c in checks if not c.ok]
        if failed:
            raise ParityError("the exported model scores reference images differently from the "
                              f"trained model: {describe(failed)}; nothing was written")
        bad_sizes = [row for row in sizes if not row["ok"]]
        if bad_sizes:
            raise ParityError("the exported model disagrees with torch at input sizes " + ", ".join(
                f"{row['input_size']} (torch {row['torch']:.6g}, onnx {row['onnx']:.6g})"
                for row in bad_sizes) + f" beyond {limit:.3g}; nothing was written")
        max_probability = _largest(probabilities + [row["probability_max_abs_diff"]
                                                    for row in sizes])
        if max_probability is not None and not max_probability <= limit:
            raise ParityError("the exported classifier's class probabilities differ from "
                              f"torch's by {max_probability:.3g}, beyond {limit:.3g}; nothing "
                              "was written")
        record: dict[str, Any] = {
            "format": "defectscope-onnx",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model": bundle.model.name,
            "bundle_tensors_sha256": bundle.info["files"][TENSORS],
            "onnx_file": ONNX_FILE,
            "onnx_sha256": sha256_file(onnx_path),
            "opset": OPSET,
            "inputs": [INPUT_NAME],
            "outputs": [graph.output_name],
            "input_layout": "N x 3 x H x W float32, after the 'preprocess' steps below",
            "output_layout": graph.output_layout,
            "preprocess": preprocess,
            "tolerance": tolerance,
            "tolerance_rule": "abs(runtime score - recorded score) <= tolerance * threshold",
            "threshold": runtime.threshold,
            "references": [dict(c.to_dict(), map_max_abs_diff=m, probability_max_abs_diff=q)
                           for c, m, q in zip(checks, maps, probabilities)],
            "max_score_difference": max(c.difference for c in checks),
            "max_map_abs_diff": _largest(maps),  # None: the model draws no map (classifier)
            "max_probability_abs_diff": max_probability,  # None: not a classifier
            "input_size_checks": sizes,
            "onnxruntime_version": onnxruntime.__version__,
            "torch_version": torch.__version__,
        }
        (staging / EXPORT_JSON).write_text(json.dumps(record, indent=2))
    return out_dir
