"""Bearer-token auth: a write token (``--token`` or ``DEFECTSCOPE_TOKEN``) and an optional
read-only token (``--read-token`` or ``DEFECTSCOPE_READ_TOKEN``).

Contract (other tools depend on it): clients send ``Authorization: Bearer <token>``.

- Every endpoint that changes state or accepts uploads needs the write token: a missing or wrong
  token gets 401, the read-only token 403.
- Reads (results, part images and heatmaps, dashboard data, metrics) need either token: a factory
  network is not a trust boundary, and part images are the plant's data. A service started with
  ``public_reads`` (``--public-reads``, e.g. for a kiosk screen) serves reads to anyone.
- ``/health`` and the dashboard's own page and scripts (code, not data) are always open.

Tokens are compared in constant time.

>>> token = resolve_token(args.token, os.environ)          # doctest: +SKIP
>>> app = create_app(inspector, store, archive, token=token)  # doctest: +SKIP
"""

from __future__ import annotations

import hmac
from typing import Mapping

from fastapi import HTTPException, Request, status

from defectscope.errors import ConfigError

TOKEN_ENV = "DEFECTSCOPE_TOKEN"
READ_TOKEN_ENV = "DEFECTSCOPE_READ_TOKEN"


def resolve_token(cli_token: str | None, environ: Mapping[str, str]) -> str:
    """The token from the command line, else from ``DEFECTSCOPE_TOKEN``; refuses none."""
    token = cli_token or environ.get(TOKEN_ENV, "")
    return check_token(token)


def resolve_read_token(cli_token: str | None, environ: Mapping[str, str]) -> str | None:
    """The read-only token from the command line, else ``DEFECTSCOPE_READ_TOKEN``; may be none."""
    token = cli_token or environ.get(READ_TOKEN_ENV, "")
    return check_token(token) if token else None


def check_token(token: str | None) -> str:
    if not token:
        raise ConfigError(f"the service needs a token: pass --token or set {TOKEN_ENV} "
                          "(for example: export DEFECTSCOPE_TOKEN=$(openssl rand -hex 16))")
    if token != token.strip():
        raise ConfigError("the token must not start or end with whitespace")
    return token


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "missing token: send the header 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    return given.strip()


def _same(given: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def require_token(request: Request) -> None:
    """FastAPI dependency for writes: 401 unless the request carries the write token (403 for
    the read-only token)."""
    ctx = request.app.state.ctx
    given = _bearer(request)
    if _same(given, ctx.token):
        return
    if _same(given, ctx.read_token):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "this token may only read; writes need the service's write token")
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong token",
                        headers={"WWW-Authenticate": "Bearer"})


def require_read(request: Request) -> None:
    """FastAPI dependency for reads: the write or the read-only token, unless reads are public."""
    ctx = request.app.state.ctx
    if ctx.public_reads:
        return
    given = _bearer(request)
    if not (_same(given, ctx.token) or _same(given, ctx.read_token)):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong token",
                            headers={"WWW-Authenticate": "Bearer"})
