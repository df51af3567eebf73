"""Detection datasets on the command line: ``data convert`` and the detection side of
``data import|info|split``. Parsing and printing only; the work is in ``defectscope.data``.

    defectscope data import --format deeppcb --data ../shared/data/deeppcb --out pcb.json
    defectscope data split pcb.json --fractions 0.8,0.2 --out pcb-split.json
    defectscope data convert --from deeppcb ../shared/data/deeppcb --to yolo out/pcb-yolo
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from defectscope.data.boxes.dataset import FORMAT as DETECTION_FORMAT
from defectscope.data.boxes.dataset import DetectionDataset
from defectscope.data.boxes.imports import DetectionImport
from defectscope.data.boxes.summary import format_detection_summary
from defectscope.errors import ConfigError

DETECTION_FORMATS = ("deeppcb", "coco", "yolo-boxes")
CONVERT_FROM = ("yolo", "coco", "deeppcb", "dataset")
CONVERT_TO = ("yolo", "coco")


def is_detection_json(path: str | Path) -> bool:
    """True when ``path`` is a saved ``DetectionDataset`` (not a manifest)."""
    path = Path(path)
    if not (path.is_file() and path.suffix.lower() == ".json"):
        return False
    try:
        with path.open(encoding="utf-8") as handle:
            head = handle.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    return f'"format": "{DETECTION_FORMAT}"' in head or f'"format":"{DETECTION_FORMAT}"' in head


def load_detection(args: argparse.Namespace
                   ) -> tuple[DetectionDataset, DetectionImport | None, str]:
    """The detection dataset named by ``--data``/``--format`` (a folder or a saved JSON)."""
    from defectscope.data.boxes.convert import import_detection

    if is_detection_json(args.data):
        return DetectionDataset.load(args.data), None, "dataset"
    fmt = args.format
    if fmt not in DETECTION_FORMATS + ("yolo",):
        raise ConfigError(f"--format {fmt!r} is not a detection format; use one of "
                          f"{', '.join(DETECTION_FORMATS)}")
    on_bad = "skip" if args.skip_bad else "error"
    if fmt == "coco" and getattr(args, "images_dir", None):
        from defectscope.data.boxes.coco import import_coco

        result = import_coco(args.data, images_dir=args.images_dir, on_bad=on_bad)
    else:
        result = import_detection(args.data, fmt, on_bad=on_bad)
    return result.dataset, result, fmt


def run_import_detection(args: argparse.Namespace) -> int:
    """``data import --format deeppcb|coco|yolo-boxes``: summary, then the dataset JSON."""
    dataset, result, fmt = load_detection(args)
    if args.name:
        dataset = dataclasses.replace(dataset, name=args.name)
    skipped, warnings = (result.skipped, result.warnings) if result else ((), ())
    print(format_detection_summary(dataset, skipped, warnings))
    written = dataset.save(args.out)
    print(f"\nWrote {written} ({len(dataset.samples)} images, "
          f"{sum(len(s.boxes) for s in dataset.samples)} boxes, format {fmt})")
    return 0


def run_info_detection(path: str, verify: bool = False) -> int:
    """Print the summary; with ``verify`` re-hash every image and template (1 if any differ)."""
    from defectscope.data.hashing import sha256_file

    dataset = DetectionDataset.load(path)
    print(format_detection_summary(dataset))
    if not verify:
        return 0
    problems = []
    for sample in dataset.samples:
        for file, expected in ((dataset.path_of(sample), sample.sha256),
                               (dataset.template_path_of(sample), sample.template_sha256)):
            if file is None:
                continue
            if not file.is_file():
                problems.append(f"{file}: missing")
            elif sha256_file(file) != expected:
                problems.append(f"{file}: content changed")
    if not problems:
        print(f"\nVerified: all files match the dataset ({len(dataset.samples)} images).")
        return 0
    print(f"\n{len(problems)} file(s) differ from the dataset:", *problems, sep="\n  ")
    print("Re-import the dataset (`defectscope data import`) to record the new content.")
    return 1


def split_names(fractions: tuple[float, ...]) -> tuple[str, ...]:
    """Two fractions are train,test (DeepPCB's 80/20); three are train,val,test."""
    names = {2: ("train", "test"), 3: ("train", "val", "test")}.get(len(fractions))
    if names is None:
        raise ConfigError(f"--fractions needs 2 (train,test) or 3 (train,val,test) numbers, got "
                          f"{len(fractions)}")
    return names


def run_split_detection(path: str, out: str, fractions: tuple[float, ...], seed: int) -> int:
    from defectscope.data.boxes.splits import split_detection

    dataset = split_detection(DetectionDataset.load(path), fractions, seed=seed,
                              names=split_names(fractions))
    print(format_detection_summary(dataset))
    print(f"\nWrote {dataset.save(out)}")
    return 0


def add_convert(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "convert", help="convert detection data between YOLO, COCO and DeepPCB",
        description="Read a detection dataset (YOLO folder, COCO JSON or folder, DeepPCB folder, "
        "or a saved dataset .json) and write it as a YOLO or COCO folder (images copied). "
        "Splits travel along (unsplit images go to train); DeepPCB templates are copied to "
        "templates/<split>/ under their image's name. COCO to a .json path writes one file "
        "that points at the images where they are.",
        epilog="example: defectscope data convert --from deeppcb data/deeppcb --split 0.8,0.2 "
        "--to yolo out/pcb-yolo")
    parser.add_argument("--from", dest="from_format", required=True, choices=CONVERT_FROM,
                        help="format of SRC")
    parser.add_argument("src", metavar="SRC", help="dataset folder or file to read")
    parser.add_argument("--to", dest="to_format", required=True, choices=CONVERT_TO,
                        help="format to write")
    parser.add_argument("out", metavar="OUT", help="new or empty folder to write (COCO: or .json)")
    parser.add_argument("--split", metavar="FRACTIONS",
                        help="re-split by group before writing: 0.8,0.2 (train,test) or "
                        "0.7,0.15,0.15 (train,val,test)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --split (default: 0)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out bad images (listed) instead of stopping")
    parser.set_defaults(handler=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from defectscope.data.boxes.coco import export_coco
    from defectscope.data.boxes.convert import import_detection
    from defectscope.data.boxes.splits import split_detection
    from defectscope.data.boxes.yolo import export_yolo

    result = import_detection(args.src, args.from_format,
                              on_bad="skip" if args.skip_bad else "error")
    dataset = result.dataset
    if args.split:
        fractions = _fractions(args.split)
        dataset = split_detection(dataset, fractions, seed=args.seed, names=split_names(fractions))
    print(format_detection_summary(dataset, result.skipped, result.warnings))
    writer = export_yolo if args.to_format == "yolo" else export_coco
    out = writer(dataset, args.out)
    print(f"\nWrote {out} ({args.to_format}: {len(dataset.samples)} images, "
          f"{sum(len(s.boxes) for s in dataset.samples)} boxes, {len(result.skipped)} file(s) "
          f"skipped, {len(result.warnings)} warning(s))")
    return 0


def _fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError as error:
        raise ConfigError(f"--split {text!r} must be numbers separated by commas, e.g. 0.8,0.2"
                          ) from error


__all__ = ["DETECTION_FORMATS", "add_convert", "is_detection_json", "load_detection",
           "run_import_detection", "run_info_detection", "run_split_detection", "split_names"]
