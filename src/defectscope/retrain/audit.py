"""The audit trail: one JSON line per gate decision (promotion or rejection) with its figures.

Why JSON lines appended with fsync: an auditor asks "why is this model on the line?" months
later; every decision is one self-contained line, earlier lines are never rewritten, and a crash
loses at most the line being written.

>>> append_audit("models/audit.jsonl", {"decision": "promoted", "candidate": "ab12"})  # doctest: +SKIP
>>> read_audit("models/audit.jsonl")[-1]["decision"]                                 # doctest: +SKIP
'promoted'
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Mapping

from defectscope.errors import DataError


def append_audit(path: str | os.PathLike[str], record: Mapping[str, Any]) -> dict[str, Any]:
    """Append ``record`` with a UTC time stamp; returns what was written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    line = {"time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **dict(record)}
    with open(target, "a", encoding="utf-8") as out:
        out.write(json.dumps(line, sort_keys=True, default=str) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return line


def read_audit(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record, oldest first; a missing log is empty, a damaged line is an error."""
    source = Path(path)
    if not source.is_file():
        return []
    records = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise DataError(f"{source}:{number}: damaged audit line ({error})") from error
    return records
