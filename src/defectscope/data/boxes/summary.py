"""A readable text summary of a detection dataset: boxes per class and split, images, templates,
groups, and what was left out. Printed by ``defectscope data import|info|split|convert``.

>>> print(format_detection_summary(dataset))          # doctest: +SKIP
Dataset   deeppcb
Version   9c1e...
Root      /data/deeppcb
<BLANKLINE>
boxes          train  val  test  unsplit  total
open               0    0     0     1280   1280
...
"""

from __future__ import annotations

from collections.abc import Iterable

from defectscope.data.boxes.dataset import DetectionDataset
from defectscope.values import SPLITS

__all__ = ["format_detection_summary"]

_UNSPLIT = "unsplit"
_MAX_LISTED = 20


def format_detection_summary(dataset: DetectionDataset, skipped: Iterable[object] = (),
                             warnings: Iterable[str] = ()) -> str:
    """Name, version, root, a box-count table (class x split) with image rows, templates,
    groups, skipped files and warnings. ``skipped`` holds records with ``path`` and ``reason``."""
    columns = (*SPLITS, _UNSPLIT, "total")
    rows: list[tuple[str, list[int]]] = []
    for label in dataset.classes:
        rows.append((label, _per_split(dataset, lambda s: sum(b.label == label for b in s.boxes))))
    rows.append(("all boxes", _per_split(dataset, lambda s: len(s.boxes))))
    rows.append(("images", _per_split(dataset, lambda s: 1)))
    rows.append(("defect-free", _per_split(dataset, lambda s: int(s.is_good))))
    width = max(len("boxes"), *(len(label) for label, _ in rows))
    cell = 2 + max(*(len(c) for c in columns), *(len(str(v)) for _, vs in rows for v in vs))
    header = "boxes".ljust(width) + "".join(c.rjust(cell) for c in columns)
    body = [label.ljust(width) + "".join(str(v).rjust(cell) for v in vs) for label, vs in rows]
    n_classes = len(dataset.classes)
    lines = [f"Dataset   {dataset.name or '(unnamed)'}", f"Version   {dataset.version_id}",
             f"Root      {dataset.root}", "", header, *body[:n_classes], "-" * len(header),
             *body[n_classes:], ""]
    with_template = sum(1 for s in dataset.samples if s.template_path)
    lines.append(f"Templates {with_template} of {len(dataset.samples)} images")
    groups = {s.group for s in dataset.samples if s.group is not None}
    ungrouped = sum(1 for s in dataset.samples if s.group is None)
    lines.append(f"Groups    {len(groups)} ({ungrouped} images without a group, each its own)")
    skipped = list(skipped)
    if skipped:
        lines += ["", f"Skipped {len(skipped)} file(s):"]
        lines += [f"  {getattr(s, 'path', s)}: {getattr(s, 'reason', '')}"
                  for s in skipped[:_MAX_LISTED]]
        if len(skipped) > _MAX_LISTED:
            lines.append(f"  ... and {len(skipped) - _MAX_LISTED} more")
    warnings = list(warnings)
    if warnings:
        lines += ["", f"Warnings ({len(warnings)}):", *(f"  - {w}" for w in warnings)]
    return "\n".join(lines)


def _per_split(dataset: DetectionDataset, count) -> list[int]:
    values = [sum(count(s) for s in dataset.samples if s.split == split) for split in SPLITS]
    values.append(sum(count(s) for s in dataset.samples if s.split is None))
    values.append(sum(values))
    return values
