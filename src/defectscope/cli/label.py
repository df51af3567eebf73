"""``defectscope label propose``: model-assisted label proposals. Parsing and printing only.

    defectscope label propose --model MODEL_DIR IMAGE_OR_DIR... [--out DIR] [--json] [--force]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("label", help="labelling: model-assisted proposals",
                                   description="Labelling tools.")
    verbs = parser.add_subparsers(dest="label_command", metavar="VERB")
    propose = verbs.add_parser(
        "propose", help="propose a defect mask and boxes per image from a model's evidence",
        description="Per image, refine the model's anomaly map (anomaly models), probability "
        "map (segmenter) or boxes (box models) to the defect's outline with GrabCut, and write "
        "<stem>_mask.png (0/255, the image's size) and <stem>_boxes.json under --out.")
    propose.add_argument("--model", required=True, metavar="MODEL_DIR", help="model folder")
    propose.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    propose.add_argument("--out", metavar="DIR", help="folder for the masks and boxes")
    propose.add_argument("--force", action="store_true",
                         help="propose the most anomalous region even under the threshold "
                         "(every image is known to be defective)")
    propose.add_argument("--json", action="store_true", help="one JSON line per image")
    propose.set_defaults(handler=run_propose)


def run_propose(args) -> int:
    from defectscope.bundle import load_bundle
    from defectscope.data.images import load_image
    from defectscope.errors import DefectscopeError
    from defectscope.inspect import iter_image_paths
    from defectscope.labelling.propose import propose

    import cv2

    bundle = load_bundle(args.model)
    model = bundle.model
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in iter_image_paths(args.images):
        row = {"path": str(path), "error": None}
        try:
            image = load_image(path)
            result = model.predict(image)
            boxes = [d.box for d in result.detections] if result.anomaly_map is None else []
            threshold = float(model.threshold or 0.5)
            proposal = propose(image, result.anomaly_map, threshold, boxes=boxes,
                               force=args.force or bool(boxes))
        except DefectscopeError as error:
            failed += 1
            row["error"] = str(error)
            print(json.dumps(row) if args.json else f"{path}: error: {error}")
            continue
        row.update(proposal.to_dict())
        if out is not None:
            mask_path = out / f"{path.stem}_mask.png"
            cv2.imwrite(str(mask_path), proposal.mask)
            (out / f"{path.stem}_boxes.json").write_text(json.dumps(row["boxes"]))
            row["mask"] = str(mask_path)
        if args.json:
            print(json.dumps(row))
        else:
            print(f"{path}: {len(proposal.boxes)} box(es), {row['mask_pixels']} mask pixels")
    return 1 if failed else 0
