"""``defectscope label propose``: model-assisted label proposals. Parsing and printing only.

    defectscope label propose --model MODEL_DIR IMAGE_OR_DIR... [--out DIR] [--json] [--force]
    defectscope label export [--db URL] [--archive DIR] --format manifest|mvtec|coco|yolo
                             --out DIR [--parent MANIFEST]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from defectscope.store.locations import DEFAULT_DB_URL, absolute_db_url, default_archive_for


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
    export = verbs.add_parser(
        "export", help="export the label store (studio and review labels) as a dataset",
        description="Write every labelled image of the label store (one record per image "
        "content hash, shared by the labelling studio and the review queue) as a new dataset "
        "version (manifest) or an MVTec AD, COCO or YOLO folder.")
    export.add_argument("--db", default=DEFAULT_DB_URL, type=absolute_db_url, metavar="URL",
                        help=f"results database holding the labels (default {DEFAULT_DB_URL})")
    export.add_argument("--archive", metavar="DIR",
                        help="image archive holding the masks (default: images/ beside a "
                        "SQLite --db, as serve uses)")
    export.add_argument("--format", required=True, metavar="FORMAT",
                        help="manifest (a new dataset version), mvtec, coco or yolo")
    export.add_argument("--out", required=True, metavar="DIR", help="new or empty folder")
    export.add_argument("--parent", metavar="MANIFEST",
                        help="the dataset version the labels build on (recorded as parent; its "
                        "other samples stay in a manifest export)")
    export.add_argument("--classes", metavar="A,B", help="class order for COCO and YOLO")
    export.set_defaults(handler=run_export)


def run_propose(args) -> int:
    from defectscope.bundle import load_bundle
    from defectscope.data.image_io import load_image
    from defectscope.errors import DefectscopeError
    from defectscope.predict_files import iter_image_paths
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


def run_export(args) -> int:
    from defectscope.data.images.manifest import Manifest
    from defectscope.labelling.export import export_labels
    from defectscope.store import ImageArchive, LabelStore, ResultStore

    store = ResultStore(args.db)
    try:
        labels = LabelStore(store).all()
        base = Manifest.load(args.parent) if args.parent else None
        classes = [c.strip() for c in args.classes.split(",")] if args.classes else []
        archive = ImageArchive(args.archive or default_archive_for(args.db))
        result = export_labels(labels, archive, args.format, args.out, base=base,
                               classes=classes)
    finally:
        store.close()
    print(f"exported {result.images} labelled image(s) as {result.format} to {result.out}"
          + (f" (version {result.version_id}, parent {result.parent_version})"
             if result.version_id else ""))
    return 0
