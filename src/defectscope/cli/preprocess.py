"""``defectscope preprocess preview|align``: see what the model sees; check alignment alone.

    defectscope preprocess preview --config steps.yaml IMAGE... --out preview/
    defectscope preprocess align REFERENCE IMAGE --json

The config file is YAML or JSON: a list of steps, or a mapping with a ``steps`` list (and any
other ``PreprocessConfig`` option). ``align --json`` prints ``{"homography": 3x3 list mapping
IMAGE pixel coordinates onto REFERENCE, "quality": number, "ok": bool}`` and exits 1 when
alignment fails (the JSON is still printed, with ``"ok": false``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from defectscope.errors import AlignmentError, ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preprocess", help="preview preprocessing steps or check alignment",
        description="Preview a preprocessing pipeline (before/after PNGs) or align one image "
        "to a reference.")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    preview = verbs.add_parser("preview", help="write before/after PNGs for IMAGE...",
                               description="Apply the steps of --config to each IMAGE and write "
                               "<name>_before.png and <name>_after.png into --out.")
    preview.add_argument("--config", required=True, metavar="FILE",
                         help="YAML or JSON: a list of steps")
    preview.add_argument("images", nargs="+", metavar="IMAGE")
    preview.add_argument("--out", default="preprocess-preview", metavar="DIR")
    preview.add_argument("--reference", metavar="IMAGE",
                         help="image the learned steps (align, histogram) learn from "
                         "(default: the first IMAGE)")
    preview.set_defaults(handler=_preview)
    align = verbs.add_parser("align", help="align IMAGE onto REFERENCE",
                             description="Estimate the transform mapping IMAGE onto REFERENCE "
                             "(features + RANSAC, refined by ECC) and its quality.")
    align.add_argument("reference", metavar="REFERENCE")
    align.add_argument("image", metavar="IMAGE")
    align.add_argument("--json", action="store_true", help="print one JSON object")
    align.add_argument("--features", default="orb", help="orb (default), sift or akaze")
    align.add_argument("--motion", default="homography", help="homography (default) or affine")
    align.add_argument("--min-quality", type=float, default=0.5, metavar="Q",
                       help="fail below this quality (0..1, default 0.5)")
    align.add_argument("--no-ecc", action="store_true", help="skip the ECC refinement")
    align.set_defaults(handler=_align)
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)


def load_steps_file(path: str | Path) -> dict[str, Any]:
    """Options for ``PreprocessConfig`` from a YAML/JSON file (a list of steps or a mapping)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such preprocessing config file")
    try:
        data = yaml.safe_load(path.read_text())  # JSON is YAML too
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML/JSON ({error})") from error
    if isinstance(data, list):
        return {"steps": data}
    if isinstance(data, dict):
        return data
    raise ConfigError(f"{path}: expected a list of steps or a mapping with 'steps'")


def _preview(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from defectscope.data import load_image
    from defectscope.preprocess import PreprocessConfig, Preprocessor

    preprocessor = Preprocessor(PreprocessConfig.from_dict(load_steps_file(args.config)))
    if preprocessor.needs_fit:
        preprocessor.fit([load_image(args.reference or args.images[0])])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in args.images:
        image = load_image(path)
        stem = Path(path).stem
        try:
            after = preprocessor.prepare(image).image
        except AlignmentError as error:
            print(f"{path}: {error}", file=sys.stderr)
            failed += 1
            continue
        for suffix, picture in (("before", image), ("after", after)):
            target = out / f"{stem}_{suffix}.png"
            cv2.imwrite(str(target), cv2.cvtColor(np.ascontiguousarray(picture), cv2.COLOR_RGB2BGR))
        print(f"{path}: {image.shape[1]}x{image.shape[0]} -> {after.shape[1]}x{after.shape[0]} "
              f"({out / stem}_before.png, {out / stem}_after.png)")
    return 1 if failed else 0


def _align(args: argparse.Namespace) -> int:
    from defectscope.data import load_image
    from defectscope.preprocess.align import Align

    step = Align(features=args.features, motion=args.motion, min_quality=args.min_quality,
                 ecc=not args.no_ecc)  # validates the options (ConfigError -> exit 2)
    reference, image = load_image(args.reference), load_image(args.image)
    try:
        found = step.estimate(reference, image)
        homography, quality, ok, problem = found.homography, found.quality, True, None
    except AlignmentError as error:
        homography, quality, ok, problem = error.homography, error.quality, False, str(error)
    if args.json:
        print(json.dumps({
            "homography": None if homography is None else [[float(v) for v in row]
                                                            for row in homography],
            "quality": float(quality),
            "ok": ok,
        }))
    elif ok:
        print(f"quality {quality:.4f}\nhomography (IMAGE -> REFERENCE):")
        for row in homography:
            print("  " + "  ".join(f"{v: .6f}" for v in row))
    if not ok:
        print(f"defectscope: {args.image}: {problem}", file=sys.stderr)
        return 1
    return 0
