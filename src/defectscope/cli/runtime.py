"""``defectscope export``: write a bundle's ONNX export for the torch-free runtime.

    defectscope export --model MODEL_DIR --format onnx|openvino [--out DIR] [--tolerance 1e-3]

``--format openvino`` writes the ONNX file and, beside it, its OpenVINO IR (model.xml, model.bin),
each proven against torch (``run``/``serve``/``predict --backend openvino`` then use the IR).

Models: patchcore, padim, classifier, segmenter, reference, detector (``SUPPORTED_MODELS``);
any other is refused with a message naming these.
"""

from __future__ import annotations

import argparse
import json

from defectscope.runtime.engine import DEFAULT_TOLERANCE, EXPORT_JSON, SUPPORTED_MODELS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a model folder to ONNX for the torch-free runtime",
        description="Export the model's network to ONNX (MODEL_DIR/onnx by default) and prove "
        "it: every reference image in the bundle is re-scored by the runtime and the export "
        "fails, writing nothing, if a score differs from the recorded one by more than "
        "TOLERANCE x threshold. defectscope run and serve then use it without torch. "
        f"Models: {', '.join(SUPPORTED_MODELS)}.")
    parser.add_argument("--model", required=True, metavar="MODEL_DIR", help="model folder")
    parser.add_argument("--format", default="onnx", choices=("onnx", "openvino"),
                        help="onnx (default), or openvino: the ONNX file and its OpenVINO IR "
                        "beside it, both parity-checked")
    parser.add_argument("--out", metavar="DIR",
                        help="folder to write (default MODEL_DIR/onnx, where run and serve look)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, metavar="T",
                        help=f"largest score difference allowed, as a fraction of the threshold "
                        f"(default {DEFAULT_TOLERANCE:g})")
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from defectscope.export import export_onnx  # imports torch: only when exporting

    formats = ("onnx",) if args.format == "onnx" else ("onnx", args.format)
    out = export_onnx(args.model, args.out, tolerance=args.tolerance, formats=formats)
    record = json.loads((out / EXPORT_JSON).read_text())
    parts = [f"exported {record['model']} to {out} (opset {record['opset']}); "
             f"{len(record['references'])} reference images re-scored: largest score difference "
             f"{record['max_score_difference']:.3g} (allowed {args.tolerance:g} x threshold "
             f"{record['threshold']:.4g})"]
    if record.get("max_map_abs_diff") is not None:
        parts.append(f"largest anomaly-map difference {record['max_map_abs_diff']:.3g}")
    if record.get("max_probability_abs_diff") is not None:
        parts.append(f"largest class-probability difference "
                     f"{record['max_probability_abs_diff']:.3g}")
    if record.get("max_box_abs_diff") is not None:
        parts.append(f"same detections, largest box difference "
                     f"{record['max_box_abs_diff']:.3g} px")
    if record.get("openvino"):
        parts.append(f"OpenVINO IR {record['openvino']['openvino_version']}: largest score "
                     f"difference {record['openvino']['max_score_difference']:.3g}")
    print(", ".join(parts))
    return 0
