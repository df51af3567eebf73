"""Turn a folder of images into a ``Manifest``: MVTec AD layout or one sub-folder per class.

Why so strict: every file under the dataset is either imported or listed in ``skipped`` with a
reason, and every image is decoded once, so a corrupt or truncated file is found at import time,
not halfway through training. Bad files (unreadable image, mask of the wrong size) stop the import
with one error listing all of them, unless ``on_bad="skip"`` (CLI ``--skip-bad``).

>>> result = import_folder("data/magnetic-tile")                  # doctest: +SKIP
>>> result.manifest.labels                                         # doctest: +SKIP
('blowhole', 'break', 'crack', 'fray', 'good', 'uneven')
>>> result = import_dataset("data/bottle", "mvtec", on_bad="skip")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import inspect
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from defectscope.data.image_io import IMAGE_EXTENSIONS, is_image_file
from defectscope.data.import_common import (Candidate, ImportResult, Plan, Skipped, build_result,
                                            check_on_bad, check_root, listing,
                                            relative_name, walk_files)
from defectscope.errors import ConfigError, DataError
from defectscope.values import GOOD

DEFAULT_GOOD_NAMES = ("good", "ok", "free", "normal", "pass")
MVTEC_LAYOUT = (
    "the MVTec AD layout is train/good/<image> (good images), test/<type>/<image> "
    "(test images, 'good' included) and ground_truth/<type>/<stem>_mask.png (defect masks)"
)


def import_dataset(root: str | os.PathLike[str], format: str, **options: Any) -> ImportResult:
    """Import ``root`` with the importer named by ``format`` (``"mvtec"`` or ``"folder"``)."""
    importers: dict[str, Callable[..., ImportResult]] = {
        "mvtec": import_mvtec,
        "folder": import_folder,
        "yolo": _import_yolo,
    }
    if format not in importers:
        raise ConfigError(
            f"unknown dataset format {format!r}; known formats: {', '.join(sorted(importers))}"
        )
    importer = importers[format]
    accepted = [n for n in inspect.signature(importer).parameters if n != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"format {format!r} does not take option(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(accepted)}"
        )
    return importer(root, **options)


def _import_yolo(root: str | os.PathLike[str], *, label_rule: str = "boxes",
                 keep_split: bool = False, on_bad: str = "error") -> ImportResult:
    from defectscope.data.images.yolo import import_yolo  # imported late: yolo.py builds on this module

    return import_yolo(root, label_rule=label_rule, keep_split=keep_split, on_bad=on_bad)


def import_mvtec(root: str | os.PathLike[str], *, on_bad: str = "error") -> ImportResult:
    """Import one MVTec AD category: train/good -> ("good", "train"), test/<type> -> "test".

    Masks are ``ground_truth/<type>/<stem>_mask.png`` (``<stem>.png`` is accepted too). A defect
    image without a mask and a mask without an image are warnings; JPEG images are fine.
    """
    base = check_root(root)
    check_on_bad(on_bad)
    train_good = base / "train" / "good"
    if not train_good.is_dir() or not any(is_image_file(p) for p in walk_files(train_good)):
        raise DataError(f"{train_good}: missing or has no images; {MVTEC_LAYOUT}")
    plan = Plan()
    masks: dict[tuple[str, str], Path] = {}
    for file in walk_files(base):
        parts = file.relative_to(base).parts
        if not is_image_file(file):
            plan.skipped.append(Skipped(relative_name(file, base), "not an image"))
        elif parts[0] == "train" and len(parts) == 3 and parts[1] == GOOD:
            plan.candidates.append(Candidate(file, GOOD, "train"))
        elif parts[0] == "test" and len(parts) == 3:
            plan.candidates.append(Candidate(file, parts[1], "test"))
        elif parts[0] == "ground_truth" and len(parts) == 3:
            masks[(parts[1], file.name)] = file
        else:
            plan.skipped.append(Skipped(relative_name(file, base), f"not where {MVTEC_LAYOUT}"))
    if not (base / "test").is_dir():
        plan.warnings.append(f"{base / 'test'}: missing; only training images were imported")
    claimed: set[Path] = set()
    for index, candidate in enumerate(plan.candidates):
        if candidate.split != "test":
            continue
        stem = candidate.path.stem
        mask = masks.get((candidate.label, f"{stem}_mask.png")) or masks.get(
            (candidate.label, f"{stem}.png")
        )
        if mask is not None:
            claimed.add(mask)
            plan.candidates[index] = Candidate(candidate.path, candidate.label, "test", mask)
        elif candidate.label != GOOD:
            plan.warnings.append(
                f"{relative_name(candidate.path, base)}: defect image has no mask "
                f"(expected ground_truth/{candidate.label}/{stem}_mask.png)"
            )
    _skip_orphan_masks(plan, sorted(set(masks.values()) - claimed), base)
    return build_result(base, plan, on_bad, source={"importer": "mvtec", "options": {"on_bad": on_bad}})


def import_folder(
    root: str | os.PathLike[str],
    *,
    good_names: Sequence[str] = DEFAULT_GOOD_NAMES,
    mask_rule: str = "auto",
    group_pattern: str | None = None,
    class_map: Mapping[str, str] | None = None,
    on_bad: str = "error",
) -> ImportResult:
    """Import one sub-folder per class; images are found recursively inside each class folder.

    Labels are the folder names, lower-cased, without a prefix shared by all class folders up
    to an underscore (``MT_Blowhole``, ``MT_Free`` -> ``blowhole``, ``free``); a name in
    ``good_names`` becomes ``"good"``; ``class_map`` (folder name -> label) overrides both.

    ``mask_rule``: ``"auto"`` takes, for image ``x.jpg``, ``x.png`` beside it (when the image is
    not itself a PNG), else ``x_mask.png`` beside it, else ``masks/x.png`` in the image's folder
    or in its parent folder; ``"none"`` uses no masks; any other value is a format string
    relative to the image's folder, e.g. ``"{stem}_mask.png"`` or ``"../masks/{stem}.png"``.
    Files used as masks are not images of their own.

    ``group_pattern``: a regex searched in each file name; its first group (or the whole match)
    is the sample's group (a part, lot or session that must not straddle splits).
    """
    base = check_root(root)
    check_on_bad(on_bad)
    pattern = _compile_group_pattern(group_pattern)
    mask_for = _mask_finder(mask_rule)
    class_dirs = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(
            f"{base}: no class folders; put images in one sub-folder per class, "
            "e.g. good/ and scratch/"
        )
    labels = _labels_for([d.name for d in class_dirs], good_names, class_map)
    plan = Plan()
    for file in walk_files(base):
        if file.parent == base:
            reason = "not an image" if not is_image_file(file) else "not inside a class folder"
            plan.skipped.append(Skipped(relative_name(file, base), reason))
        elif not is_image_file(file):
            plan.skipped.append(Skipped(relative_name(file, base), "not an image"))
    all_images = {p for d in class_dirs for p in walk_files(d) if is_image_file(p)}
    mask_of, named_masks = mask_for(all_images)
    masks = set(mask_of.values()) | named_masks
    images = all_images - masks
    bad_groups: list[str] = []
    used_classes: list[str] = []
    for class_dir in class_dirs:
        found = sorted(p for p in images if class_dir in p.parents)
        if not found:
            if any(class_dir in p.parents for p in masks):
                continue  # a folder of masks only, not a class
            raise DataError(
                f"class folder {class_dir} has no images; remove it or add images "
                f"(images are files ending in {', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        used_classes.append(labels[class_dir.name])
        for image in found:
            group = None
            if pattern is not None:
                match = pattern.search(image.name)
                if match is None:
                    bad_groups.append(relative_name(image, base))
                    continue
                group = match.group(1) if pattern.groups else match.group(0)
            label = labels[class_dir.name]
            plan.candidates.append(Candidate(image, label, None, mask_of.get(image), group))
    if bad_groups:
        raise DataError(
            f"group pattern {group_pattern!r} (--group-pattern) matches none of these file names: "
            f"{listing(bad_groups)}; adjust the pattern so it matches every image name"
        )
    claimed = {c.mask for c in plan.candidates if c.mask is not None}
    _skip_orphan_masks(plan, sorted(masks - claimed), base)
    _warn_about_classes(plan, sorted(set(used_classes)), base)
    options = {
        "good_names": list(good_names),
        "mask_rule": mask_rule,
        "group_pattern": group_pattern,
        "class_map": dict(class_map) if class_map else None,
        "on_bad": on_bad,
    }
    return build_result(base, plan, on_bad, source={"importer": "folder", "options": options})


def import_defects(root: str | os.PathLike[str], *, on_bad: str = "error") -> ImportResult:
    """A folder of real defect images (``train --defects DIR``): an anomaly model never learns
    from them, but they weigh in when its settings are tuned and its threshold calibrated.

    One sub-folder per defect type (labels as ``import_folder`` names them, none of them good),
    or the images directly in the folder (all of type ``defect``). Masks are found by the
    ``auto`` rule of ``import_folder`` (``x.png`` / ``x_mask.png`` beside ``x.jpg``, or
    ``masks/x.png``). Every sample has split ``val``.
    """
    base = check_root(root)
    loose = [f for f in base.iterdir() if f.is_file() and is_image_file(f)]
    if not loose:
        result = import_folder(base, good_names=(), on_bad=on_bad)
        good = [s.path for s in result.manifest.samples if s.is_good]
        if good:
            raise DataError(f"{base}: a defects folder holds defect images only, but "
                            f"{listing(good)} are labelled good; leave them out")
    else:
        plan = Plan()
        files = {f for f in walk_files(base) if is_image_file(f)}
        mask_of, named_masks = _auto_masks(files)
        masks = set(mask_of.values()) | named_masks
        for image in sorted(files - masks):
            plan.candidates.append(Candidate(image, "defect", None, mask_of.get(image), None))
        for file in walk_files(base):
            if not is_image_file(file):
                plan.skipped.append(Skipped(relative_name(file, base), "not an image"))
        _skip_orphan_masks(plan, sorted(masks - set(mask_of.values())), base)
        result = build_result(base, plan, on_bad, source={"importer": "defects"})
    manifest = result.manifest
    samples = [dataclasses.replace(s, split="val") for s in manifest.samples]
    return dataclasses.replace(result, manifest=manifest.with_samples(samples))


def _labels_for(
    names: list[str], good_names: Sequence[str], class_map: Mapping[str, str] | None
) -> dict[str, str]:
    """Folder name -> label: shared prefix up to an underscore removed, lower-cased, good mapped."""
    class_map = dict(class_map or {})
    unknown = sorted(set(class_map) - set(names))
    if unknown:
        raise ConfigError(
            f"class_map names folder(s) {', '.join(unknown)} that do not exist; "
            f"class folders are: {', '.join(names)}"
        )
    cut = 0
    if len(names) >= 2:
        prefix = os.path.commonprefix(names)
        cut = prefix.rfind("_") + 1
        if any(len(name) <= cut for name in names):
            cut = 0  # stripping would leave an empty label
    goods = {g.lower() for g in good_names}
    labels = {}
    for name in names:
        label = name[cut:].lower()
        labels[name] = GOOD if label in goods else label
    labels.update(class_map)
    return labels


def _mask_finder(
    mask_rule: str,
) -> Callable[[set[Path]], tuple[dict[Path, Path], set[Path]]]:
    """Return a function: image files -> ({image: mask}, files that are masks by their name)."""
    if mask_rule == "none":
        return lambda files: ({}, set())
    if mask_rule == "auto":
        return _auto_masks
    if "{stem}" not in mask_rule:
        raise ConfigError(
            f"mask_rule {mask_rule!r} must be 'auto', 'none' or a format string with {{stem}}, "
            "e.g. '{stem}_mask.png'"
        )
    try:
        mask_rule.format(stem="x")
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(
            f"mask_rule {mask_rule!r} is not a valid format string ({error}); "
            "only {stem} may be used, e.g. '{stem}_mask.png'"
        ) from error

    def by_rule(files: set[Path]) -> tuple[dict[Path, Path], set[Path]]:
        found = {}
        for image in files:
            mask = Path(os.path.normpath(image.parent / mask_rule.format(stem=image.stem)))
            if mask != image and mask in files:
                found[image] = mask
        masks = set(found.values())
        return {i: m for i, m in found.items() if i not in masks}, set()

    return by_rule


def _auto_masks(files: set[Path]) -> tuple[dict[Path, Path], set[Path]]:
    named = {f for f in files if f.parent.name == "masks" or f.stem.lower().endswith("_mask")}
    found: dict[Path, Path] = {}
    for image in files - named:
        folder, stem = image.parent, image.stem
        options = [folder / f"{stem}_mask.png", folder / "masks" / f"{stem}.png"]
        if image.suffix.lower() != ".png":
            options.insert(0, folder / f"{stem}.png")
        options.append(folder.parent / "masks" / f"{stem}.png")
        for mask in options:
            if mask in files and mask != image:
                found[image] = mask
                break
    masks = set(found.values())
    return {i: m for i, m in found.items() if i not in masks}, named


def _skip_orphan_masks(plan: Plan, orphans: Iterable[Path], base: Path) -> None:
    for mask in orphans:
        plan.skipped.append(Skipped(relative_name(mask, base), "mask with no matching image"))
        plan.warnings.append(f"{relative_name(mask, base)}: mask with no matching image (left out)")


def _warn_about_classes(plan: Plan, labels: list[str], base: Path) -> None:
    if len(labels) == 1 and labels[0] != GOOD:
        plan.warnings.append(
            f"{base}: only one class ({labels[0]!r}) and it is not good; anomaly detection "
            "needs good images: add a good/ folder or name it with --good-class / class_map"
        )
    elif GOOD not in labels:
        plan.warnings.append(
            f"{base}: no class is 'good' (classes: {', '.join(labels)}); if one holds defect-free "
            "parts, name it with --good-class / good_names or class_map"
        )


def _compile_group_pattern(group_pattern: str | None) -> re.Pattern[str] | None:
    if group_pattern is None:
        return None
    try:
        return re.compile(group_pattern)
    except re.error as error:
        raise ConfigError(
            f"group pattern {group_pattern!r} is not a valid regex ({error})"
        ) from error

