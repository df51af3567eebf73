"""Import a YOLO detection dataset (images/, labels/, data.yaml) for image classification.

Each image's label comes from its boxes: the most frequent class (ties: the lower class id), or
``"good"`` when its label file is empty or absent. Or, with ``label_rule="prefix"``, from the file
name's prefix before the last ``_`` (``crazing_10.jpg`` -> ``crazing``). The dataset's own
train/val folders are kept as recorded information (``source["given_split"]``), not as splits, so
training makes the seeded 70/15/15 split, unless ``keep_split=True``.

>>> result = import_yolo("../shared/data/neu-det")          # doctest: +SKIP
>>> result.manifest.labels                                  # doctest: +SKIP
('crazing', 'inclusion', 'patches', 'pitted_surface', 'rolled-in_scale', 'scratches')
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import yaml

from defectscope.data.image_io import is_image_file
from defectscope.data.import_common import (Candidate, ImportResult, Plan, Skipped, build_result,
                                            check_on_bad, check_root, listing, relative_name,
                                            walk_files)
from defectscope.errors import ConfigError, DataError
from defectscope.values import GOOD, SPLITS

LABEL_RULES = ("boxes", "prefix")


def read_class_names(root: Path) -> list[str]:
    """The class names of a YOLO dataset at ``root``, in id order, from its ``data.yaml``."""
    yaml_path = root / "data.yaml"
    if not yaml_path.is_file():
        raise DataError(f"{root}: no data.yaml; the YOLO layout is images/, labels/ and data.yaml "
                        "with 'names' (the class names)")
    try:
        document = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise DataError(f"{yaml_path}: not valid YAML ({error})") from error
    names = document.get("names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if not isinstance(names, list) or not names:
        raise DataError(f"{yaml_path}: 'names' must list the class names")
    return [str(name) for name in names]


def _label_from_boxes(label_file: Path, names: list[str]) -> tuple[str, bool]:
    """The image's label and whether its boxes disagree (several classes)."""
    if not label_file.is_file():
        return GOOD, False
    ids = []
    for number, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            ids.append(int(float(line.split()[0])))
        except ValueError:
            raise DataError(f"{label_file}:{number}: expected 'class cx cy w h', got {line!r}")
        if not 0 <= ids[-1] < len(names):
            raise DataError(f"{label_file}:{number}: class {ids[-1]} is not in data.yaml's "
                            f"names (0..{len(names) - 1}); fix the label or add the class")
    if not ids:
        return GOOD, False
    tally = Counter(ids)
    return names[min(tally, key=lambda i: (-tally[i], i))], len(tally) > 1


def import_yolo(root: str | os.PathLike[str], *, label_rule: str = "boxes",
                keep_split: bool = False, on_bad: str = "error") -> ImportResult:
    """Import ``root`` (YOLO layout) as a classification dataset; see the module docstring."""
    base = check_root(root)
    check_on_bad(on_bad)
    if label_rule not in LABEL_RULES:
        raise ConfigError(f"label_rule {label_rule!r}: use one of {LABEL_RULES}")
    names = read_class_names(base)
    images_dir, labels_dir = base / "images", base / "labels"
    if not images_dir.is_dir():
        raise DataError(f"{base}: no images/ folder; the YOLO layout is images/<split>/*.jpg, "
                        "labels/<split>/*.txt and data.yaml")
    plan = Plan()
    given: Counter = Counter()
    used_labels: set[Path] = set()
    unknown_prefix: list[str] = []
    mixed: list[str] = []
    for file in walk_files(images_dir):
        if not is_image_file(file):
            plan.skipped.append(Skipped(relative_name(file, base), "not an image"))
            continue
        relative = file.relative_to(images_dir)
        folder = relative.parts[0] if len(relative.parts) > 1 else ""
        label_file = (labels_dir / relative).with_suffix(".txt")
        used_labels.add(label_file)
        if label_rule == "prefix":
            label = file.stem.rsplit("_", 1)[0] if "_" in file.stem else file.stem
            if label not in names and label != GOOD:
                unknown_prefix.append(relative_name(file, base))
        else:
            label, several = _label_from_boxes(label_file, names)
            if several:
                mixed.append(relative_name(file, base))
        split = {"train": "train", "val": "val", "valid": "val", "test": "test"}.get(folder)
        given[split or "none"] += 1
        plan.candidates.append(Candidate(path=file, label=label,
                                          split=split if keep_split else None))
    if unknown_prefix:
        raise DataError(f"{len(unknown_prefix)} file-name prefixes name no class of data.yaml "
                        f"({', '.join(names)}): {listing(unknown_prefix)}")
    if mixed:
        plan.warnings.append(f"{len(mixed)} images have boxes of several classes and were "
                             f"labelled by the most frequent one (e.g. {mixed[0]}); if the file "
                             "names carry the class, import with label_rule='prefix' "
                             "(CLI: --label-rule prefix)")
    orphans = [f for f in walk_files(labels_dir) if f.suffix == ".txt" and f not in used_labels] \
        if labels_dir.is_dir() else []
    if orphans:
        plan.warnings.append(f"{len(orphans)} label files have no image (e.g. "
                             f"{relative_name(orphans[0], base)}); they are ignored")
    for file in (walk_files(labels_dir) if labels_dir.is_dir() else []):
        plan.skipped.append(Skipped(relative_name(file, base), "YOLO label file (read for the label)"
                                    if file in used_labels else "label file without an image"))
    plan.skipped.append(Skipped("data.yaml", "YOLO class names (read)"))
    if keep_split and given["none"]:
        raise DataError(f"keep_split: {given['none']} images are not under images/train|val|test")
    source = {"importer": "yolo", "label_rule": label_rule, "class_names": names,
              "given_split": {k: v for k, v in given.items() if k in SPLITS},
              "keep_split": keep_split}
    return build_result(base, plan, on_bad, source)
