"""ONNX export of a bundle's network, proven by a parity check (this module needs torch).

Only the network goes into ONNX, with dynamic height and width:
- anomaly models (patchcore, padim): the backbone trunk and the patch embedding (PatchCore's
  neighbourhood pooling, PaDiM's channel selection), output ``embeddings``. The scoring and the
  anomaly map are the numpy functions of ``defectscope.scoring`` that the torch model itself
  calls; the nearest-neighbour search (faiss) has no ONNX form anyway.
- supervised models: the whole network ``model.net_`` with a dynamic batch axis too, output
  ``logits`` (classifier N x C, segmenter N x 1 x H x W). Probabilities, score, verdict, defect
  type and map (with the segmenter's flip averaging) are ``defectscope.scoring``'s again.
- the reference comparison: its window network ``ReferenceNet`` (float32 windows N x 3 x s x s,
  N dynamic), outputs ``logits`` and ``boxes``. The comparison with the template, the windows,
  box decoding, clipping, NMS and verdict are ``reference_detect``'s and
  ``defectscope.scoring``'s.
- the detector (torchvision FCOS): ``detector_net.HeadOutputs``, the network up to FCOS's raw
  head outputs for a padded batch (N, H, W dynamic), outputs ``cls_logits``, ``bbox_regression``,
  ``bbox_ctrness`` and the pyramid's ``level_sizes``. Points, scores, box decoding, NMS and the
  rescaling are ``defectscope.scoring.fcos``'s numpy, which ``BoxDetector.detect`` calls too
  (in place of torchvision's post-processing).

Exported models that quietly score differently are the most reported problem with anomaly
export tools, so ``export_onnx`` re-scores every reference image of the bundle through the new
runtime and fails, leaving nothing behind, if any score differs from the recorded one by more than
``tolerance * threshold`` (default 1e-3 of the threshold). It also checks torch against ONNX on
the first reference resized to other aspect ratios (other input sizes), records the maps' largest
difference and, for the classifier, holds every class probability to the same limit (the defect
type depends on them, not on the score alone). For the box models (reference comparison,
detector) every reference image's detections (the reference model's compared with its stored
template) must also agree with torch's: same labels in the same order (but boxes of
near-equal confidence may swap places), boxes within ``BOX_TOLERANCE_PX``, confidences within
the limit; the reference model, whose network input is a
fixed window size, has no resized checks. ``export.json`` records them, and
``RuntimeModel.load`` compares the runtime's detections with them again.

With ``formats=("onnx", "openvino")`` the ONNX file is also converted to OpenVINO IR
(``model.xml``, ``model.bin``, FP32) and the same checks run again on OpenVINO; ``export.json``'s
``"openvino"`` record holds their results and the IR files' hashes, which load checks.

>>> export_onnx("models/tiles")   # writes models/tiles/onnx/{model.onnx,export.json}  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch
from torch import nn

from defectscope.bundle import TENSORS, Reference, load_bundle
from defectscope.data.hashing import sha256_file
from defectscope.errors import AlignmentError, BundleError, ConfigError
from defectscope.fileio import staged_folder
from defectscope.runtime.backends import IR_FILE, IR_WEIGHTS, convert_to_ir, openvino_version
from defectscope.runtime.engine import (
    DEFAULT_TOLERANCE,
    EXPORT_JSON,
    ONNX_DIR,
    ONNX_FILE,
    SUPPORTED_MODELS,
    RuntimeModel,
)
from defectscope.runtime.parity import (
    BOX_TOLERANCE_PX,
    ParityError,
    describe,
    detection_differences,
    detection_to_dict,
    read_references,
)
from defectscope.scoring.families import ANOMALY_MODELS, BOX_MODELS, HEADS
from defectscope.scoring.heads import BOXES_NAME, EMBEDDINGS_NAME, FCOS_OUTPUTS, INPUT_NAME, LOGITS_NAME

OPSET = 17
FORMATS = ("onnx", "openvino")  # what export_onnx writes: ONNX always, OpenVINO IR on request
ASPECTS = ((1, 1), (1, 2), (2, 1), (3, 4))  # height:width of the extra input-size checks


@dataclass(frozen=True)
class Graph:
    """What goes into the ONNX file for one model: the module, its input's dynamic axes, its
    outputs (name -> dynamic axes, in the module's output order) and an example input batch."""

    module: nn.Module
    input_axes: dict[int, str]
    outputs: dict[str, dict[int, str]]
    output_layout: str
    example: Callable[[Reference], np.ndarray]  # a reference image -> the traced input batch
    input_layout: str = "N x 3 x H x W float32, after the 'preprocess' steps below"


def network_graph(model) -> Graph:
    """The exported part of ``model``: the embedder of an anomaly model, a supervised network,
    the reference comparison's window network, the detector up to its head outputs."""
    image_axes = {0: "batch", 2: "height", 3: "width"}

    def preprocessed(reference: Reference) -> np.ndarray:
        return model.preprocessor(reference.image)[None]

    if model.name not in HEADS:
        raise BundleError(f"ONNX export supports {', '.join(SUPPORTED_MODELS)}, not "
                          f"{model.name!r}")
    if model.name in ANOMALY_MODELS:
        return Graph(model.network(), {2: "height", 3: "width"},
                     {EMBEDDINGS_NAME: {2: "grid_height", 3: "grid_width"}},
                     "1 x D x h' x w' float32 patch embeddings", preprocessed)
    if model.name == "classifier":
        return Graph(model.network(), image_axes, {LOGITS_NAME: {0: "batch"}},
                     f"N x {len(model.classes_)} float32 class logits, classes "
                     f"{list(model.classes_)}", preprocessed)
    if model.name == "segmenter":
        return Graph(model.network(), image_axes, {LOGITS_NAME: image_axes},
                     "N x 1 x H x W float32 defect logits at the input size", preprocessed)
    if model.name == "detector":
        from defectscope.scoring.fcos import pad_batch

        points = {0: "batch", 1: "points"}
        return Graph(model.network(), image_axes,
                     dict(zip(FCOS_OUTPUTS, (points, points, points, {}))),
                     f"cls_logits N x P x {len(model.classes_)} (classes "
                     f"{list(model.classes_)}), bbox_regression N x P x 4 (distances in anchor "
                     "sizes), bbox_ctrness N x P x 1 float32 over the P points of the pyramid "
                     "levels (cells row by row, finest level first), level_sizes L x 2 int64 "
                     "(grid height, width per level)",
                     lambda reference: pad_batch([model.preprocessor(reference.image)]),
                     "N x 3 x H x W float32 after the 'preprocess' steps below, zero-padded "
                     "to multiples of 32")
    if model.name == "reference":
        side = int(model.config.crop_size)
        windows = {0: "windows"}
        return Graph(model.network(), windows, {LOGITS_NAME: windows, BOXES_NAME: windows},
                     f"windows N x 3 x {side} x {side} float32 in [-1, 1] (part, template, "
                     f"difference) -> logits N x {len(model.classes_) + 1} (background, then "
                     f"{list(model.classes_)}), boxes N x 4 (x1, y1, x2, y2 as fractions of "
                     "the window)", lambda reference: np.zeros((2, 3, side, side), np.float32),
                     f"N x 3 x {side} x {side} float32 candidate windows (see output_layout)")
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
            graph.module.eval(), (torch.from_numpy(example),), str(path),
            dynamo=False, opset_version=OPSET, input_names=[INPUT_NAME],
            output_names=list(graph.outputs), do_constant_folding=True,
            dynamic_axes={INPUT_NAME: graph.input_axes, **graph.outputs},
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
    if model.name != "classifier":
        return None
    expected, got = model.probabilities(image), runtime.probabilities(image)
    if set(expected) != set(got):
        return float("inf")
    return max(abs(expected[name] - got[name]) for name in expected)


def _anomaly(model, reference: Reference):
    """``model.anomaly`` of a reference image, against its template when it has one."""
    if reference.template is None:
        return model.anomaly(reference.image)
    return model.anomaly(reference.image, reference.template)


def _detection_check(model, runtime: RuntimeModel, reference: Reference,
                     limit: float) -> dict[str, Any]:
    """Torch's and the runtime's detections of one reference image, and how far apart
    (boxes of confidences within ``limit`` of each other may have swapped places; the tails
    near where the lists end are left out, see ``settled_detections``)."""
    expected = model.detect(reference.image, reference.template)
    got = runtime.detect(reference.image, reference.template)
    box, confidence = detection_differences(expected, got, limit,
                                            runtime.head.min_confidence)
    return {"detections": [detection_to_dict(d) for d in expected],
            "box_max_abs_diff": box, "confidence_max_abs_diff": confidence}


def _size_checks(bundle, runtime: RuntimeModel, image: np.ndarray, limit: float) -> list[dict]:
    """Torch vs ONNX scores on ``image`` resized to several aspect ratios (input sizes); none
    for the reference model, whose network sees windows of one size."""
    if bundle.model.name == "reference":
        return []
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


def _certify(bundle, runtime: RuntimeModel, references: list[Reference],
             label: str) -> dict[str, Any]:
    """Torch against ``runtime`` on every reference image and on resized ones: the record's
    checks, or a ``ParityError`` (naming ``label``, the backend, but for onnxruntime) on the
    first that fails."""
    prefix = "" if label == "onnxruntime" else f"{label}: "
    checks = runtime.check_references()
    maps = [_map_difference(_anomaly(bundle.model, r)[1], _anomaly(runtime, r)[1])
            for r in references]
    probabilities = [_probability_difference(bundle.model, runtime, r.image) for r in references]
    limit = checks[0].limit
    boxes = [_detection_check(bundle.model, runtime, r, limit)
             if bundle.model.name in BOX_MODELS else {} for r in references]
    sizes = _size_checks(bundle, runtime, references[0].image, limit)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise ParityError(prefix + f"the exported model scores reference images differently "
                          f"from the trained model: {describe(failed)}; nothing was written")
    bad_sizes = [row for row in sizes if not row["ok"]]
    if bad_sizes:
        raise ParityError(prefix + "the exported model disagrees with torch at input sizes "
                          + ", ".join(f"{row['input_size']} (torch {row['torch']:.6g}, "
                                      f"{prefix[:-2] or 'onnx'} {row['onnx']:.6g})"
                                      for row in bad_sizes)
                          + f" beyond {limit:.3g}; nothing was written")
    max_probability = _largest(probabilities + [row["probability_max_abs_diff"] for row in sizes])
    if max_probability is not None and not max_probability <= limit:
        raise ParityError(prefix + f"the exported classifier's class probabilities differ from "
                          f"torch's by {max_probability:.3g}, beyond {limit:.3g}; nothing was "
                          "written")
    bad_boxes = [(c, row) for c, row in zip(checks, boxes) if row and not (
        row["box_max_abs_diff"] <= BOX_TOLERANCE_PX and row["confidence_max_abs_diff"] <= limit)]
    if bad_boxes:
        raise ParityError(prefix + "the exported model's detections differ from torch's on "
                          "reference images " + ", ".join(
                              f"{c.source} (box {row['box_max_abs_diff']:.3g} px, confidence "
                              f"{row['confidence_max_abs_diff']:.3g})" for c, row in bad_boxes)
                          + f" beyond {BOX_TOLERANCE_PX} px or {limit:.3g} (different labels "
                          "or box counts show as inf); nothing was written")
    return {
        "references": [dict(c.to_dict(), map_max_abs_diff=m, probability_max_abs_diff=q, **b)
                       for c, m, q, b in zip(checks, maps, probabilities, boxes)],
        "max_score_difference": max(c.difference for c in checks),
        "max_map_abs_diff": _largest(maps),  # None: the model draws no map (classifier)
        "max_probability_abs_diff": max_probability,  # None: not a classifier
        # None: not a box model
        "max_box_abs_diff": _largest([b.get("box_max_abs_diff") for b in boxes]),
        "input_size_checks": sizes,
    }


def export_onnx(model_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None,
                tolerance: float = DEFAULT_TOLERANCE, formats: tuple[str, ...] = ("onnx",)
                ) -> Path:
    """Export ``model_dir``'s network to ``out_dir`` (default ``model_dir/onnx``) and prove it.

    ``formats``: ``"onnx"`` is always written; with ``"openvino"`` the ONNX file is converted to
    OpenVINO IR beside it (``model.xml``, ``model.bin``, FP32), which must pass the same checks
    against torch (recorded under ``export.json``'s ``"openvino"``).

    Raises ``ParityError`` (and writes nothing) if a reference image or a resized one scores
    differently from the torch model by more than ``tolerance * threshold`` (for the classifier:
    or a class probability differs by more; for the reference model: or a reference image's
    detections differ), on any backend exported. Returns ``out_dir``.
    """
    import onnxruntime

    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ConfigError(f"unknown export format {unknown[0]!r}: use {', '.join(FORMATS)}")
    model_dir = Path(model_dir)
    out_dir = Path(out_dir) if out_dir is not None else model_dir / ONNX_DIR
    bundle = load_bundle(model_dir)
    graph = network_graph(bundle.model)  # an unsupported model -> a clear BundleError
    references = read_references(model_dir, bundle.info)  # none -> a clear BundleError
    with staged_folder(out_dir) as staging:
        onnx_path = staging / ONNX_FILE
        _export_graph(graph, graph.example(references[0]), onnx_path)
        preprocess = bundle.model.preprocess_config.to_dict()  # what the torch model really ran
        runtime = RuntimeModel.from_onnx(model_dir, onnx_path, tolerance, preprocess=preprocess)
        certificate = _certify(bundle, runtime, references, "onnxruntime")
        record: dict[str, Any] = {
            "format": "defectscope-onnx",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model": bundle.model.name,
            "bundle_tensors_sha256": bundle.info["files"][TENSORS],
            "onnx_file": ONNX_FILE,
            "onnx_sha256": sha256_file(onnx_path),
            "opset": OPSET,
            "inputs": [INPUT_NAME],
            "outputs": list(graph.outputs),
            "input_layout": graph.input_layout,
            "output_layout": graph.output_layout,
            "preprocess": preprocess,
            "tolerance": tolerance,
            "tolerance_rule": "abs(runtime score - recorded score) <= tolerance * threshold",
            "threshold": runtime.threshold,
            **certificate,
            "box_tolerance_px": BOX_TOLERANCE_PX if bundle.model.name in BOX_MODELS else None,
            "onnxruntime_version": onnxruntime.__version__,
            "torch_version": torch.__version__,
        }
        if "openvino" in formats:
            record["openvino"] = _export_openvino(bundle, model_dir, onnx_path, references,
                                                  tolerance, preprocess)
        (staging / EXPORT_JSON).write_text(json.dumps(record, indent=2))
    return out_dir


def _export_openvino(bundle, model_dir: Path, onnx_path: Path, references: list[Reference],
                     tolerance: float, preprocess: dict[str, Any]) -> dict[str, Any]:
    """Convert ``onnx_path`` to IR beside it and certify it as the ONNX file was: the
    ``"openvino"`` record of ``export.json`` (files, hashes, version, checks)."""
    xml_path = convert_to_ir(onnx_path, onnx_path.with_name(IR_FILE))
    runtime = RuntimeModel.from_onnx(model_dir, xml_path, tolerance, preprocess=preprocess,
                                     backend="openvino")
    certificate = _certify(bundle, runtime, references, "openvino")
    return {"xml_file": IR_FILE, "bin_file": IR_WEIGHTS,
            "xml_sha256": sha256_file(xml_path),
            "bin_sha256": sha256_file(xml_path.with_name(IR_WEIGHTS)),
            "precision": "f32", "openvino_version": openvino_version(), **certificate}
