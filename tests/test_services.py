"""The skip-or-fail rule for tests that need a real server."""

from __future__ import annotations

import pytest

from tests.services import REQUIRE_VARIABLE, service_missing, services_required


def test_a_missing_server_skips_when_servers_are_not_required(monkeypatch):
    monkeypatch.delenv(REQUIRE_VARIABLE, raising=False)
    assert not services_required()
    with pytest.raises(pytest.skip.Exception, match="install it"):
        service_missing("install it")


def test_a_missing_server_fails_when_the_run_requires_servers(monkeypatch):
    monkeypatch.setenv(REQUIRE_VARIABLE, "1")
    assert services_required()
    with pytest.raises(pytest.fail.Exception, match="install it"):
        service_missing("install it")
