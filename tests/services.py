"""Skip or fail when a real server a test needs is missing.

``scripts/test.sh`` (the README's test command, and CI) starts mosquitto, PostgreSQL and Chromium
and sets ``DEFECTSCOPE_REQUIRE_SERVICES=1``; then a missing server fails the test with one line
saying how to provide it, so the suite never passes by skipping what it did not test. A plain
``pytest`` run without that variable skips those tests instead.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_VARIABLE = "DEFECTSCOPE_REQUIRE_SERVICES"


def services_required() -> bool:
    """True when the run promised real servers (``scripts/test.sh`` sets the variable)."""
    return os.environ.get(REQUIRE_VARIABLE, "") not in ("", "0")


def service_missing(reason: str, *, module_level: bool = False) -> None:
    """Fail (when servers are required) or skip, with ``reason`` saying how to provide it."""
    if services_required():
        pytest.fail(f"{reason} ({REQUIRE_VARIABLE} is set: scripts/test.sh starts it)",
                    pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)
