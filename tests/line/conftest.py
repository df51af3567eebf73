"""A fake inspector and tiny image files for the line tests (no model, no torch)."""

from __future__ import annotations

from tests.fakes import FakeInspector, fake_inspector, make_inspector, png, write_png  # noqa: F401
