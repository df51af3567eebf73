"""The line, the store and the service must run on an edge box without torch."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "defectscope.store", "defectscope.store.results", "defectscope.store.archive",
    "defectscope.line", "defectscope.line.sources", "defectscope.line.decision",
    "defectscope.line.actions", "defectscope.line.pipeline", "defectscope.line.runner",
    "defectscope.line.genicam", "defectscope.line.mqtt", "defectscope.line.opcua",
    "defectscope.monitor", "defectscope.review", "defectscope.preprocess",
    "defectscope.service", "defectscope.service.app", "defectscope.service.routes",
    "defectscope.service.auth",
    "defectscope.runtime", "defectscope.runtime.engine", "defectscope.runtime.anomaly",
    "defectscope.runtime.supervised", "defectscope.runtime.reference",
    "defectscope.runtime.detector", "defectscope.runtime.backends", "defectscope.scoring", "defectscope.scoring.fcos",
    "defectscope.scoring.detection", "defectscope.models.reference_compare",
    "defectscope.models.reference_detect", "defectscope.bundle",
]


def test_store_line_and_service_do_not_import_torch():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in MODULES)
            + "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "assert not loaded, loaded\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
