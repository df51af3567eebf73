"""Import DeepPCB: pairs of a board under test and its aligned defect-free template, with boxes.

Layout (Tang et al., 2019): ``groupG/G/<id>_test.jpg`` (the board), ``groupG/G/<id>_temp.jpg``
(its template) and ``groupG/G_not/<id>.txt`` (its boxes, one a line ``x1,y1,x2,y2,type``; the
published files separate with spaces, so commas, spaces or both are accepted). Type ids map to
``DEEPPCB_CLASSES`` in order: 1 open, 2 short, 3 mousebite, 4 spur, 5 copper, 6 pin-hole.

Pairs are found by walking the folder, not from ``trainval.txt``, so a partial copy or an extra
group imports as it is. A sample's ``group`` is its ``groupNNNNN`` folder (one PCB scan; split by
it with ``split_detection`` so no board is in both train and test). No splits are assigned.

Bad input: a test image without template, a test image without label file, an unreadable image,
a malformed line or an unknown type id stop the import with one error naming each file (and
line), or with ``on_bad="skip"`` leave that image out, counted in ``skipped``. A label file or
template without its test image is a counted warning.

>>> result = import_deeppcb("../shared/data/deeppcb")                  # doctest: +SKIP
>>> result.dataset.classes                                              # doctest: +SKIP
('open', 'short', 'mousebite', 'spur', 'copper', 'pin-hole')
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from defectscope.data.boxes.imports import (DetectionImport, PendingImage, RawBox,
                                               build_detection_import)
from defectscope.data.image_io import is_image_file
from defectscope.data.import_common import (Skipped, check_on_bad, check_root, listing,
                                            relative_name, walk_files)
from defectscope.errors import DataError

__all__ = ["DEEPPCB_CLASSES", "import_deeppcb"]

DEEPPCB_CLASSES = ("open", "short", "mousebite", "spur", "copper", "pin-hole")
_TEST, _TEMPLATE = "_test", "_temp"
_SEPARATORS = re.compile(r"[,\s]+")


def _group_of(image: Path, base: Path) -> str:
    """The nearest ``group*`` folder at or above the image's folder (the root included), else
    the image's folder name."""
    for folder in (image.parent, *image.parent.parents):
        if folder.name.lower().startswith("group"):
            return folder.name
        if folder == base:
            break
    return image.parent.name


def _label_file(image: Path, stem: str) -> Path:
    """``groupG/G/<id>_test.jpg`` -> ``groupG/G_not/<id>.txt``."""
    return image.parent.parent / f"{image.parent.name}_not" / f"{stem}.txt"


def _read_boxes(label_file: Path, base: Path) -> tuple[tuple[RawBox, ...], str | None]:
    """The boxes of a label file, or a problem naming ``file:line`` and the fix."""
    boxes = []
    rel = relative_name(label_file, base)
    try:
        text = label_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return (), f"label file {rel} cannot be read ({error})"
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = [f for f in _SEPARATORS.split(line.strip()) if f]
        try:
            if len(fields) != 5:
                raise ValueError
            x1, y1, x2, y2 = (float(f) for f in fields[:4])
            type_id = int(float(fields[4]))
        except ValueError:
            return (), (f"{rel}:{number}: expected 'x1,y1,x2,y2,type' (commas or spaces), "
                        f"got {line.strip()!r}; fix the line")
        if not 1 <= type_id <= len(DEEPPCB_CLASSES):
            return (), (f"{rel}:{number}: unknown defect type {type_id} (DeepPCB types are 1 open, "
                        "2 short, 3 mousebite, 4 spur, 5 copper, 6 pin-hole); fix the line")
        boxes.append(RawBox(x1, y1, x2, y2, DEEPPCB_CLASSES[type_id - 1], f"{rel}:{number}"))
    return tuple(boxes), None


def _template_of(image: Path, stem: str, files: set[Path]) -> Path | None:
    same = image.with_name(f"{stem}{_TEMPLATE}{image.suffix}")
    if same in files:
        return same
    others = sorted(f for f in files if f.parent == image.parent and f.stem == stem + _TEMPLATE
                    and is_image_file(f))
    return others[0] if others else None


def import_deeppcb(root: str | os.PathLike[str], *, on_bad: str = "error",
                   verify: bool = True) -> DetectionImport:
    """Import a DeepPCB folder (or one of its group folders); see the module docstring.

    ``verify=False`` reads image headers only (faster; a truncated file is then found later).
    """
    base = check_root(root)
    check_on_bad(on_bad)
    files = walk_files(base)
    file_set = set(files)
    pending: list[PendingImage] = []
    used: set[Path] = set()
    for file in files:
        if not (is_image_file(file) and file.stem.endswith(_TEST)):
            continue
        stem = file.stem[: -len(_TEST)]
        template = _template_of(file, stem, file_set)
        label_file = _label_file(file, stem)
        group = _group_of(file, base)
        used.add(file)
        if template is None:
            pending.append(PendingImage(file, group=group, problem=(
                f"missing template (expected {stem}{_TEMPLATE}{file.suffix} beside it)")))
            continue
        used.add(template)
        if label_file not in file_set:
            pending.append(PendingImage(file, group=group, problem=(
                f"no label file (expected {relative_name(label_file, base)}; an empty file marks a "
                "defect-free board)")))
            continue
        used.add(label_file)
        boxes, problem = _read_boxes(label_file, base)
        pending.append(PendingImage(file, boxes, template, group, problem=problem))
    if not pending:
        raise _no_pairs(base)
    skipped: list[Skipped] = []
    warnings: list[str] = []
    orphan_labels = [f for f in files if f.suffix.lower() == ".txt"
                     and f.parent.name.endswith("_not") and f not in used]
    orphan_templates = [f for f in files if is_image_file(f) and f.stem.endswith(_TEMPLATE)
                        and f not in used]
    for orphans, what in ((orphan_labels, "label file"), (orphan_templates, "template")):
        if orphans:
            names = [relative_name(f, base) for f in orphans]
            skipped.extend(Skipped(n, f"{what} without a test image") for n in names)
            warnings.append(f"{len(names)} {what}(s) without a test image were left out: "
                            f"{listing(names)}")
    reported = used | set(orphan_labels) | set(orphan_templates)
    skipped.extend(Skipped(relative_name(f, base), "not used by the DeepPCB importer")
                   for f in files if f not in reported)
    source = {"importer": "deeppcb", "options": {"on_bad": on_bad, "verify": verify}}
    return build_detection_import(base, pending, DEEPPCB_CLASSES, on_bad=on_bad, source=source,
                                  skipped=skipped, warnings=warnings, verify=verify)


def _no_pairs(base: Path) -> DataError:
    return DataError(f"{base}: no DeepPCB test images found; the layout is groupG/G/<id>_test.jpg "
                     "with <id>_temp.jpg beside it and boxes in groupG/G_not/<id>.txt")
