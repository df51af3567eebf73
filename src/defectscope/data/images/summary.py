"""A readable text summary of a manifest: what is in it, per class and split, and what was left
out. Printed by every ``defectscope data`` command.

>>> print(format_summary(manifest))      # doctest: +SKIP
Dataset   magnetic-tile
Version   3f2a9c0d51e8b774
...
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from defectscope.data.images.manifest import UNSPLIT, Manifest
from defectscope.values import SPLITS

_MAX_LISTED = 20


def format_summary(
    manifest: Manifest, skipped: Iterable[object] = (), warnings: Iterable[str] = ()
) -> str:
    """Name, version, root, a class x split count table, masks, groups, skipped files, warnings.

    ``skipped`` holds ``Skipped`` records (anything with ``path`` and ``reason``).
    """
    lines = [
        f"Dataset   {manifest.name or '(unnamed)'}",
        f"Version   {manifest.version_id}"
        + (f" (parent {manifest.parent_version})" if manifest.parent_version else ""),
        f"Root      {manifest.root}",
        "",
        *_count_table(manifest),
        "",
    ]
    with_mask = sum(1 for s in manifest.samples if s.mask_path is not None)
    lines.append(f"Masks     {with_mask} of {len(manifest.samples)} images")
    groups = {s.group for s in manifest.samples if s.group is not None}
    ungrouped = sum(1 for s in manifest.samples if s.group is None)
    lines.append(f"Groups    {len(groups)} ({ungrouped} images without a group, each its own)")
    skipped = list(skipped)
    if skipped:
        lines += ["", f"Skipped {len(skipped)} file(s):"]
        lines += [
            f"  {getattr(s, 'path', s)}: {getattr(s, 'reason', '')}" for s in skipped[:_MAX_LISTED]
        ]
        if len(skipped) > _MAX_LISTED:
            lines.append(f"  ... and {len(skipped) - _MAX_LISTED} more")
    warnings = list(warnings)
    if warnings:
        lines += ["", f"Warnings ({len(warnings)}):"]
        lines += [f"  - {w}" for w in warnings]
    return "\n".join(lines)


def _count_table(manifest: Manifest) -> list[str]:
    columns = (*SPLITS, UNSPLIT, "total")
    counts = manifest.counts()
    rows: list[tuple[str, Sequence[int]]] = []
    totals = [0] * len(columns)
    for label, per_split in counts.items():
        values = [per_split[c] for c in columns[:-1]]
        values.append(sum(values))
        rows.append((label, values))
        totals = [a + b for a, b in zip(totals, values, strict=True)]
    rows.append(("total", totals))
    width = max(len("class"), *(len(label) for label, _ in rows))
    cell = 2 + max(*(len(c) for c in columns), *(len(str(v)) for _, values in rows for v in values))
    header = "class".ljust(width) + "".join(c.rjust(cell) for c in columns)
    body = [
        label.ljust(width) + "".join(str(v).rjust(cell) for v in values) for label, values in rows
    ]
    return [header, *body[:-1], "-" * len(header), body[-1]]
