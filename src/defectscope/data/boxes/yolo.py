"""Import and export the YOLO detection layout with its boxes (not reduced to image labels).

Layout: ``images/<split>/<name>.jpg``, ``labels/<split>/<name>.txt`` (one box a line:
``class cx cy w h``, normalised to the image's width and height), ``data.yaml`` with ``names``.
An image without a label file is defect-free (the YOLO convention; a counted warning says how
many). With ``keep_split`` (the default) the ``train``/``val``/``test`` folders (``valid`` read
as ``val``) become the samples' splits, so ``../shared/data/neu-det`` keeps its 1440/360 split.

Templates: an export of a dataset with templates (DeepPCB) copies each to
``templates/<split>/<name>`` beside ``images/``; the importer pairs them back from there. YOLO has
no place for groups, so they are not exported (export COCO to keep them).

>>> result = import_yolo_boxes("../shared/data/neu-det")        # doctest: +SKIP
>>> len(result.dataset.select("train")), len(result.dataset.select("val"))   # doctest: +SKIP
(1440, 360)
>>> export_yolo(result.dataset, "out/neu-yolo")                 # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from defectscope.data.boxes.dataset import DetectionDataset
from defectscope.data.boxes.exports import copy_export, plan_export, prepare_out_dir
from defectscope.data.boxes.imports import DetectionImport, PendingImage, RawBox, \
    build_detection_import
from defectscope.data.image_io import is_image_file
from defectscope.data.import_common import (Skipped, check_on_bad, check_root, listing,
                                            relative_name, walk_files)
from defectscope.data.images.yolo import read_class_names
from defectscope.errors import DataError
from defectscope.fileio import write_text_atomic
from defectscope.values import SPLITS

__all__ = ["export_yolo", "import_yolo_boxes"]

_SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "test": "test"}
_LAYOUT = "the YOLO layout is images/<split>/*.jpg, labels/<split>/*.txt and data.yaml"


def _read_labels(label_file: Path, names: list[str], base: Path
                 ) -> tuple[tuple[RawBox, ...], str | None]:
    rel = relative_name(label_file, base)
    try:
        lines = label_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        return (), f"label file {rel} cannot be read ({error})"
    boxes = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 5:
                raise ValueError
            class_id = int(float(fields[0]))
            cx, cy, w, h = (float(f) for f in fields[1:])
        except ValueError:
            return (), (f"{rel}:{number}: expected 'class cx cy w h' (5 numbers; polygon labels "
                        f"are not supported), got {line.strip()!r}")
        if not 0 <= class_id < len(names):
            return (), (f"{rel}:{number}: class {class_id} is not in data.yaml's names "
                        f"(0..{len(names) - 1}); fix the label or add the class")
        boxes.append(RawBox(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, names[class_id],
                            f"{rel}:{number}", normalised=True))
    return tuple(boxes), None


def import_yolo_boxes(root: str | os.PathLike[str], *, keep_split: bool = True,
                      on_bad: str = "error", verify: bool = True) -> DetectionImport:
    """Import ``root`` (YOLO layout) with its boxes; see the module docstring."""
    base = check_root(root)
    check_on_bad(on_bad)
    names = read_class_names(base)
    images_dir, labels_dir, templates_dir = base / "images", base / "labels", base / "templates"
    if not images_dir.is_dir():
        raise DataError(f"{base}: no images/ folder; {_LAYOUT}")
    pending: list[PendingImage] = []
    skipped: list[Skipped] = []
    used: set[Path] = set()
    unlabelled: list[str] = []
    for file in walk_files(images_dir):
        if not is_image_file(file):
            skipped.append(Skipped(relative_name(file, base), "not an image"))
            continue
        relative = file.relative_to(images_dir)
        folder = relative.parts[0] if len(relative.parts) > 1 else ""
        split = _SPLIT_FOLDERS.get(folder) if keep_split else None
        if keep_split and split is None:
            raise DataError(f"{relative_name(file, base)}: not under images/train, val or test; move it "
                            "there or import with keep_split=False")
        label_file = (labels_dir / relative).with_suffix(".txt")
        template_file = templates_dir / relative
        template = template_file if template_file.is_file() else None
        boxes: tuple[RawBox, ...] = ()
        problem = None
        if label_file.is_file():
            used.add(label_file)
            boxes, problem = _read_labels(label_file, names, base)
        else:
            unlabelled.append(relative_name(file, base))
        if template is not None:
            used.add(template)
        pending.append(PendingImage(file, boxes, template, None, split, problem))
    if not pending:
        raise DataError(f"{images_dir}: no images found; {_LAYOUT}")
    warnings = []
    if unlabelled:
        warnings.append(f"{len(unlabelled)} image(s) have no label file and were imported as "
                        f"defect-free: {listing(unlabelled)}")
    orphans = [f for f in walk_files(labels_dir) if f.suffix == ".txt" and f not in used] \
        if labels_dir.is_dir() else []
    if orphans:
        listed = [relative_name(f, base) for f in orphans]
        skipped.extend(Skipped(f, "label file without an image") for f in listed)
        warnings.append(f"{len(listed)} label file(s) without an image were left out: "
                        f"{listing(listed)}")
    source = {"importer": "yolo-boxes", "class_names": names,
              "options": {"keep_split": keep_split, "on_bad": on_bad, "verify": verify}}
    return build_detection_import(base, pending, names, on_bad=on_bad, source=source,
                                  skipped=skipped, warnings=warnings, verify=verify)


def _label_line(box, class_id: int, width: int, height: int) -> str:
    values = ((box.x1 + box.x2) / 2 / width, (box.y1 + box.y2) / 2 / height,
              (box.x2 - box.x1) / width, (box.y2 - box.y1) / height)
    return " ".join([str(class_id), *(format(v, ".10g") for v in values)])


def export_yolo(dataset: DetectionDataset, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``dataset`` as a YOLO folder (images copied, labels, data.yaml); returns the folder.

    Samples without a split go to ``train``. Every image gets a label file (empty for a
    defect-free image). ``out_dir`` must be new or empty.
    """
    out = prepare_out_dir(out_dir)
    items = plan_export(dataset)
    class_id = {name: index for index, name in enumerate(dataset.classes)}
    copy_export(dataset, items, out)
    for item in items:
        sample = item.sample
        lines = [_label_line(b, class_id[b.label], sample.width, sample.height)
                 for b in sample.boxes]
        label = out / "labels" / Path(item.image).relative_to("images").with_suffix(".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    splits = [s for s in SPLITS if any(item.split == s for item in items)]
    document: dict = {"path": ".", **{s: f"images/{s}" for s in splits},
                      "nc": len(dataset.classes), "names": list(dataset.classes)}
    header = f"# Exported by defectscope from {dataset.name or dataset.root} " \
             f"(dataset version {dataset.version_id}).\n"
    if any(item.template for item in items):
        document["templates"] = "templates"
        header += ("# templates/<split>/<name> is the defect-free template of images/<split>/"
                   "<name> (defectscope reads it; other YOLO tools ignore it).\n")
    write_text_atomic(out / "data.yaml",
                      header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return out
