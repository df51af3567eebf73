"""``defectscope data import|info|split|convert``: make, inspect and split dataset manifests.

Only argument parsing and printing live here; the work is done by ``defectscope.data``. Detection
datasets (boxes: DeepPCB, COCO, YOLO boxes) go through ``cli/detection_data.py``.

    defectscope data import --data data/magnetic-tile --out tiles.json
    defectscope data split tiles.json --out tiles-split.json --seed 0 --near-duplicates
    defectscope data info tiles-split.json --verify --near-duplicates
    defectscope data import --format deeppcb --data data/deeppcb --out pcb.json
    defectscope data convert --from deeppcb data/deeppcb --to yolo out/pcb-yolo
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from defectscope.cli.detection_data import (DETECTION_FORMATS, add_convert, is_detection_json,
                                            run_import_detection, run_info_detection,
                                            run_split_detection)
from defectscope.data.image_io import load_image
from defectscope.data.images.importers import ImportResult, import_dataset
from defectscope.data.images.manifest import Manifest
from defectscope.data.near_duplicates import (cross_split_groups, find_near_duplicates,
                                              group_near_duplicates)
from defectscope.data.images.splits import split_manifest
from defectscope.data.images.summary import format_summary
from defectscope.errors import ConfigError

FORMATS = ("mvtec", "folder", "yolo")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` command and its sub-commands to the main parser."""
    data = subparsers.add_parser(
        "data",
        help="import, inspect and split datasets (manifests)",
        description="Dataset manifests: every image with its label, split, group and sha256.",
    )
    commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    data.set_defaults(handler=lambda args: _help(data))
    _add_import(commands)
    _add_info(commands)
    _add_split(commands)
    _add_synthesize(commands)
    add_convert(commands)


def _add_import(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "import",
        help="scan a dataset folder, check every image and write a manifest",
        description=(
            "Scan a dataset folder, decode and hash every image and mask, and write a manifest. "
            "Every file is imported or listed as skipped with its reason. Formats: 'mvtec' "
            "(train/good, test/<type>, ground_truth/<type>/<stem>_mask.png) and 'folder' (one "
            "sub-folder per class, e.g. good/ and scratch/). Detection formats ('deeppcb', "
            "'coco', 'yolo-boxes') write a detection dataset .json with every box instead."
        ),
    )
    add_dataset_arguments(parser)
    parser.add_argument("--out", required=True, metavar="MANIFEST.json", help="manifest to write")
    parser.add_argument("--name", help="dataset name to record (default: the folder name)")
    parser.set_defaults(handler=run_import)


def add_dataset_arguments(parser: argparse.ArgumentParser, data_help: str = "the dataset folder"
                          ) -> None:
    """The options that say where a dataset is and how to read it (shared with train/test)."""
    parser.add_argument("--data", required=True, metavar="DIR", help=data_help)
    parser.add_argument(
        "--format",
        choices=FORMATS + ("manifest",) + DETECTION_FORMATS,
        help="dataset layout (default: mvtec when DIR/train/good exists, manifest when DIR is a "
        ".json manifest, otherwise folder); deeppcb, coco and yolo-boxes read boxes",
    )
    parser.add_argument(
        "--images-dir",
        metavar="DIR",
        help="coco format: folder of the images the JSON names (default: found beside it)",
    )
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out unreadable images and mismatched masks (listed) instead of stopping",
    )
    parser.add_argument(
        "--group-pattern",
        metavar="REGEX",
        help="folder format: regex searched in file names; its first group is the part/lot "
        r"(e.g. '^(part\d+)_'), kept within one split",
    )
    parser.add_argument(
        "--good-class",
        nargs="+",
        metavar="NAME",
        help="folder format: class folder names that hold good parts "
        "(replaces the default: good ok free normal pass)",
    )
    parser.add_argument(
        "--label-rule",
        choices=("boxes", "prefix"),
        help="yolo format: image label from its boxes' most frequent class (default) or from "
        "the file-name prefix before the last '_' (crazing_10.jpg -> crazing)",
    )
    parser.add_argument(
        "--mask-rule",
        metavar="RULE",
        help="folder format: 'auto' (default), 'none', or a file name pattern relative to the "
        "image's folder such as '{stem}_mask.png'",
    )


def load_dataset(args: argparse.Namespace) -> tuple[Manifest, ImportResult | None, str]:
    """The manifest named by ``--data``/``--format``: imported from a folder or read from JSON."""
    data = Path(args.data)
    fmt = args.format
    if fmt is None:
        if data.is_file() and data.suffix == ".json":
            fmt = "manifest"
        else:
            fmt = "mvtec" if (data / "train" / "good").is_dir() else "folder"
    if fmt == "manifest":
        return Manifest.load(data), None, fmt
    if fmt in DETECTION_FORMATS:
        raise ConfigError(f"--format {fmt} holds boxes, not image labels; use it with a detection "
                          "model or `defectscope data import`")
    options: dict[str, Any] = {"on_bad": "skip" if args.skip_bad else "error"}
    if args.group_pattern is not None:
        options["group_pattern"] = args.group_pattern
    if args.good_class:
        options["good_names"] = tuple(args.good_class)
    if args.mask_rule is not None:
        options["mask_rule"] = args.mask_rule
    if getattr(args, "label_rule", None) is not None:
        options["label_rule"] = args.label_rule
    result = import_dataset(args.data, fmt, **options)
    return result.manifest, result, fmt


def _add_info(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "info",
        help="print a manifest's summary (and check its files with --verify)",
        description="Print a manifest's counts per class and split; --verify re-hashes files.",
    )
    parser.add_argument("manifest", metavar="MANIFEST.json", help="manifest to read")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="re-hash every image and mask; list missing or changed files and exit 1 if any",
    )
    parser.add_argument(
        "--near-duplicates",
        action="store_true",
        help="look for re-shots of one spot (other lighting, small shift) that sit in different "
        "splits, a leak that flatters test figures; exit 1 if any",
    )
    _add_near_duplicate_options(parser)
    parser.set_defaults(handler=run_info)


def _add_split(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "split",
        help="assign train/val/test splits (seeded, stratified by class, group-aware)",
        description=(
            "Assign every image to train, val or test: per class in the given proportions, "
            "with all images of one group in one split. Same input and seed, same result."
        ),
    )
    parser.add_argument("manifest", metavar="MANIFEST.json", help="manifest to split")
    parser.add_argument("--out", required=True, metavar="NEW.json", help="split manifest to write")
    parser.add_argument(
        "--fractions",
        default="0.7,0.15,0.15",
        metavar="TRAIN,VAL,TEST",
        help="split proportions summing to 1 (default: 0.7,0.15,0.15)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--near-duplicates",
        action="store_true",
        help="first find re-shots of one spot (other lighting, small shift) and keep each set in "
        "one split (about 50 ms per image)",
    )
    _add_near_duplicate_options(parser)
    parser.set_defaults(handler=run_split)


def _add_near_duplicate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--min-inliers",
        type=int,
        default=20,
        metavar="N",
        help="keypoint matches that must agree on one move for two images to count as one spot "
        "(default: 20; unrelated images give about 10 by chance)",
    )


def run_import(args: argparse.Namespace) -> int:
    """Import ``args.data``, print its summary and write the manifest."""
    if args.format in DETECTION_FORMATS or is_detection_json(args.data):
        return run_import_detection(args)
    manifest, result, fmt = load_dataset(args)
    if args.name:
        manifest = dataclasses.replace(manifest, name=args.name)
    skipped, warnings = (result.skipped, result.warnings) if result else ((), ())
    print(format_summary(manifest, skipped, warnings))
    written = manifest.save(args.out)
    print(f"\nWrote {written} ({len(manifest.samples)} images, format {fmt})")
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Print a manifest's summary; with ``--verify`` return 1 when files changed."""
    if is_detection_json(args.manifest):
        return run_info_detection(args.manifest, verify=args.verify)
    manifest = Manifest.load(args.manifest)
    print(format_summary(manifest))
    status = 0
    if args.near_duplicates:
        status = _report_leaks(manifest, args.min_inliers)
    if not args.verify:
        return status
    problems = manifest.verify_files()
    if not problems:
        print(f"\nVerified: all files match the manifest ({len(manifest.samples)} images).")
        return status
    print(f"\n{len(problems)} file(s) differ from the manifest:")
    for path, problem in problems:
        print(f"  {path}: {problem}")
    print("Re-import the dataset (`defectscope data import`) to record the new content.")
    return 1


def run_split(args: argparse.Namespace) -> int:
    """Split a manifest, print the counts per class and split, and write the new manifest."""
    if is_detection_json(args.manifest):
        return run_split_detection(args.manifest, args.out, _parse_fractions(args.fractions),
                                   args.seed)
    manifest = Manifest.load(args.manifest)
    fractions = _parse_fractions(args.fractions)
    notes: tuple[str, ...] = ()
    if args.near_duplicates:
        manifest, report = group_near_duplicates(manifest, min_inliers=args.min_inliers)
        notes = tuple(report.lines())
    result = split_manifest(manifest, fractions, seed=args.seed)
    print(format_summary(result.manifest, warnings=notes + result.warnings))
    written = result.manifest.save(args.out)
    print(f"\nWrote {written}")
    return 0


def _report_leaks(manifest: Manifest, min_inliers: int) -> int:
    """Print sets of near-duplicate images that straddle splits; 1 if there are any."""
    found = find_near_duplicates([manifest.path_of(s) for s in manifest.samples],
                                 loader=load_image, min_inliers=min_inliers)
    leaks = cross_split_groups(manifest, found)
    n_images = sum(len(group) for group in leaks)
    if not leaks:
        print(f"\nNear-duplicates: {found.n_grouped} images are re-shots of another image; no set "
              "straddles two splits.")
        return 0
    print(f"\nLEAK: {len(leaks)} set(s) of near-duplicate images ({n_images} images) straddle "
          "splits, so test figures are flattered. Re-split with `defectscope data split "
          "--near-duplicates`. First sets:")
    for group in leaks[:10]:
        print("  " + "; ".join(f"{s.path} ({s.split})" for s in group))
    return 1


def _add_synthesize(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "synthesize",
        help="make synthetic defects (with exact masks) from good images, in the MVTec layout",
        description="Write train/good, test/good, test/<kind> and ground_truth/<kind> masks: "
        "cut-and-paste patches, Perlin-noise texture blends, scratches and blobs made from a "
        "held-out share of the good images.",
    )
    parser.add_argument("--from", dest="source", required=True, metavar="DIR",
                        help="folder of good images (searched recursively)")
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset folder to write")
    parser.add_argument("--n", type=int, required=True, help="number of defective images")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--kinds", nargs="+", metavar="KIND",
                        help="defect kinds (default: patch perlin scratch blob)")
    parser.set_defaults(handler=run_synthesize)


def run_synthesize(args: argparse.Namespace) -> int:
    from defectscope.data.images.synthesize import KINDS, synthesize_dataset

    counts = synthesize_dataset(args.source, args.out, args.n, seed=args.seed,
                                kinds=tuple(args.kinds or KINDS))
    print(", ".join(f"{name} {count}" for name, count in counts.items()))
    print(f"Wrote {args.out} (MVTec layout); train with --format mvtec")
    return 0


def _parse_fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError as error:
        raise ConfigError(
            f"--fractions {text!r} must be three numbers separated by commas, e.g. 0.7,0.15,0.15"
        ) from error


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
