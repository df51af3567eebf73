"""Import and export COCO detection JSON (``images``, ``annotations``, ``categories``).

Import: pass one JSON file, or a folder holding ``annotations/*.json`` (or ``*.json``). With one
file per split (``instances_train.json``, ``instances_val2017.json``, ...) each file's split comes
from its name; in a single file an image's own ``"split"`` key is used when present. Image files
are found under ``images_dir`` when given, else beside the JSON, in the folder itself, in
``images/``, ``images/<split>/`` or ``<split name of the file>/`` (the COCO 2017 layout).
Categories become the classes in id order; ``bbox`` ``[x, y, w, h]`` becomes a ``Box``.

Bad input, as in every detection importer: a box partly outside its image is clipped and a box
of zero area dropped (counted warnings); an annotation naming an image that does not exist is a
counted warning; an unknown category id, a missing or unreadable image file, or an image whose
size differs from the JSON's stops the import with one error naming them (``on_bad="skip"``
leaves those images out). Crowd annotations are imported as ordinary boxes (a warning counts
them).

Export: ``export_coco(dataset, folder)`` copies images to ``images/<split>/`` and writes
``annotations/instances_<split>.json``; ``export_coco(dataset, "x.json")`` writes one file that
points at the images where they are (paths relative to the JSON) without copying. defectscope's
extra keys per image (``split``, ``group``, ``template``: the copied template's path relative to
the export folder) are ignored by other COCO tools and read back here.

>>> result = import_coco("exports/pcb-coco")                         # doctest: +SKIP
>>> export_coco(result.dataset, "exports/pcb.json")                  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from defectscope.data.boxes.dataset import DetectionDataset, DetectionSample
from defectscope.data.boxes.exports import copy_export, plan_export, prepare_out_dir
from defectscope.data.boxes.imports import DetectionImport, PendingImage, RawBox, \
    build_detection_import
from defectscope.data.import_common import Skipped, check_on_bad, listing
from defectscope.errors import ConfigError, DataError
from defectscope.fileio import write_text_atomic
from defectscope.values import SPLITS

__all__ = ["export_coco", "import_coco"]

_SPLIT_NAME = re.compile(r"(?:^|[_.-])((train|valid|val|test)\d*)(?=$|[_.-])", re.IGNORECASE)


def _json_files(path: Path) -> tuple[Path, list[Path]]:
    """(the dataset root, the JSON files to read)."""
    if path.is_file():
        return path.parent, [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such COCO JSON file or folder; check the path")
    found = sorted((path / "annotations").glob("*.json")) or sorted(path.glob("*.json"))
    if not found:
        raise DataError(f"{path}: no COCO JSON found (looked for annotations/*.json and *.json); "
                        "pass the JSON file itself")
    return path, found


def _split_of_file(json_path: Path, several: bool) -> tuple[str | None, str]:
    """(split, the name's split word as written) for one of several per-split files."""
    match = _SPLIT_NAME.search(json_path.stem)
    if match is None:
        if several:
            raise ConfigError(f"{json_path}: several COCO files but this name says no split "
                              "(train, val or test); import the files one at a time")
        return None, ""
    word = match.group(2).lower()
    return ("val" if word == "valid" else word), match.group(1)


def _load(json_path: Path) -> dict[str, Any]:
    try:
        document = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{json_path}: not a readable COCO JSON file ({error})") from error
    missing = [k for k in ("images", "annotations", "categories")
               if not isinstance(document.get(k) if isinstance(document, dict) else None, list)]
    if missing:
        raise DataError(f"{json_path}: not a COCO detection file (no list {', '.join(missing)}); "
                        "expected keys images, annotations and categories")
    return document


def _classes(document: dict[str, Any], json_path: Path) -> tuple[dict[int, str], list[str]]:
    try:
        by_id = {int(c["id"]): str(c["name"]) for c in document["categories"]}
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{json_path}: every category needs an id and a name ({error})") from error
    names = [by_id[k] for k in sorted(by_id)]
    repeated = sorted(n for n, c in Counter(names).items() if c > 1)
    if repeated:
        raise DataError(f"{json_path}: category names {repeated} repeat; give each one id")
    return by_id, names


def _resolve(file_name: str, bases: list[Path]) -> Path | None:
    for folder in bases:
        candidate = folder / file_name
        if candidate.is_file():
            return candidate
    return None


def _read_file(json_path: Path, root: Path, images_dir: Path | None, split: str | None,
               word: str, pending: list[PendingImage], notes: Counter,
               orphans: list[str]) -> list[str]:
    document = _load(json_path)
    by_id, names = _classes(document, json_path)
    bases = [images_dir] if images_dir else [json_path.parent, root, root / "images"] + (
        [root / "images" / split, root / word] if split else [])
    boxes: dict[Any, list[RawBox]] = {image.get("id"): [] for image in document["images"]}
    problems: dict[Any, str] = {}
    for index, ann in enumerate(document["annotations"]):
        where = f"{json_path.name}: annotation {ann.get('id', f'#{index}')}"
        if ann.get("image_id") not in boxes:
            orphans.append(where)
            continue
        category = ann.get("category_id")
        if category not in by_id:
            problems.setdefault(ann["image_id"], f"{where}: unknown category id {category!r} "
                                f"(categories: {sorted(by_id)}); fix the annotation")
            continue
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError):
            problems.setdefault(ann["image_id"], f"{where}: bbox must be [x, y, width, height]")
            continue
        notes["crowd"] += bool(ann.get("iscrowd"))
        boxes[ann["image_id"]].append(RawBox(x, y, x + w, y + h, by_id[category], where))
    for image in document["images"]:
        file_name = str(image.get("file_name", ""))
        path = _resolve(file_name, bases) if file_name else None
        given_split = image.get("split") if image.get("split") in SPLITS else None
        template = image.get("template")
        template_path = root / template if isinstance(template, str) else None
        problem = problems.get(image.get("id"))
        if path is None:
            path, problem = root / file_name, f"image file not found (looked in " \
                f"{', '.join(str(b) for b in bases)})"
        elif template_path is not None and not template_path.is_file():
            problem = f"template {template} not found"
        size = (image.get("width"), image.get("height"))
        expected = (size[0], size[1]) if all(isinstance(v, int) for v in size) else None
        pending.append(PendingImage(path, tuple(boxes[image.get("id")]), template_path,
                                    image.get("group"), split or given_split, problem, expected))
    return names


def import_coco(root_or_json: str | os.PathLike[str], *,
                images_dir: str | os.PathLike[str] | None = None, on_bad: str = "error",
                verify: bool = True) -> DetectionImport:
    """Import COCO JSON (one file, or a folder of per-split files); see the module docstring."""
    check_on_bad(on_bad)
    root, files = _json_files(Path(os.path.abspath(root_or_json)))
    images = Path(os.path.abspath(images_dir)) if images_dir is not None else None
    pending: list[PendingImage] = []
    notes: Counter = Counter()
    orphans: list[str] = []
    classes: list[str] | None = None
    for json_path in files:
        split, word = _split_of_file(json_path, len(files) > 1)
        names = _read_file(json_path, root, images, split, word, pending, notes, orphans)
        if classes is not None and names != classes:
            raise DataError(f"{json_path}: categories {names} differ from {classes} of the other "
                            "files; use the same categories in every split")
        classes = names
    seen = Counter(p.path for p in pending)
    twice = sorted(str(p) for p, n in seen.items() if n > 1)
    if twice:
        raise DataError(f"images listed more than once: {listing(twice)}; list each image once")
    warnings = []
    if orphans:
        warnings.append(f"{len(orphans)} annotation(s) name an image that is not in the file and "
                        f"were left out: {listing(orphans)}")
    if notes["crowd"]:
        warnings.append(f"{notes['crowd']} crowd annotation(s) (iscrowd=1) were imported as "
                        "ordinary boxes")
    skipped = [Skipped(f.relative_to(root).as_posix(), "COCO annotations (read)") for f in files]
    source = {"importer": "coco", "files": [f.name for f in files],
              "options": {"images_dir": None if images is None else str(images),
                          "on_bad": on_bad, "verify": verify}}
    return build_detection_import(root, pending, classes or [], on_bad=on_bad, source=source,
                                  skipped=skipped, warnings=warnings, verify=verify)


def _document(dataset: DetectionDataset, rows: list[tuple[DetectionSample, dict[str, Any]]]
              ) -> dict[str, Any]:
    """A COCO document of ``rows`` (sample, its image entry without id); ids start at 1."""
    category = {name: index + 1 for index, name in enumerate(dataset.classes)}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, (sample, entry) in enumerate(rows, 1):
        images.append({"id": image_id, "width": sample.width, "height": sample.height, **entry})
        for box in sample.boxes:
            w, h = box.x2 - box.x1, box.y2 - box.y1
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": category[box.label],
                                "bbox": [box.x1, box.y1, w, h], "area": w * h, "iscrowd": 0})
    return {"info": {"description": f"exported by defectscope from {dataset.name or dataset.root}",
                     "version": dataset.version_id},
            "images": images, "annotations": annotations,
            "categories": [{"id": i, "name": n, "supercategory": "defect"}
                           for n, i in category.items()]}


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(str(path), str(start))).as_posix()


def _extras(sample: DetectionSample) -> dict[str, Any]:
    return {k: v for k, v in (("split", sample.split), ("group", sample.group)) if v is not None}


def export_coco(dataset: DetectionDataset, out_dir_or_json: str | os.PathLike[str]) -> Path:
    """Write ``dataset`` as COCO; see the module docstring. Returns the folder or the file."""
    out = Path(os.path.abspath(out_dir_or_json))
    if out.suffix.lower() == ".json":
        rows = []
        for sample in dataset.samples:
            entry = {"file_name": _relative(dataset.path_of(sample), out.parent),
                     **_extras(sample)}
            template = dataset.template_path_of(sample)
            if template is not None:
                entry["template"] = _relative(template, out.parent)
            rows.append((sample, entry))
        write_text_atomic(out, json.dumps(_document(dataset, rows), indent=1))
        return out
    out = prepare_out_dir(out)
    items = plan_export(dataset)
    copy_export(dataset, items, out)
    for split in sorted({item.split for item in items}):
        rows = [(item.sample, {"file_name": Path(item.image).name, **_extras(item.sample),
                               **({"template": item.template} if item.template else {})})
                for item in items if item.split == split]
        write_text_atomic(out / "annotations" / f"instances_{split}.json",
                          json.dumps(_document(dataset, rows), indent=1))
    return out
