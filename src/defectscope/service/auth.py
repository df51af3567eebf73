"""Bearer-token auth: one shared token, from ``--token`` or ``DEFECTSCOPE_TOKEN``.

Contract (other tools depend on it): clients send ``Authorization: Bearer <token>``; a missing or
wrong token gets 401 on every endpoint that changes state or accepts uploads. Tokens are
compared in constant time.

>>> token = resolve_token(args.token, os.environ)          # doctest: +SKIP
>>> app = create_app(inspector, store, archive, token=token)  # doctest: +SKIP
"""

from __future__ import annotations

import hmac
from typing import Mapping

from fastapi import HTTPException, Request, status

from defectscope.errors import ConfigError

TOKEN_ENV = "DEFECTSCOPE_TOKEN"


def resolve_token(cli_token: str | None, environ: Mapping[str, str]) -> str:
    """The token from the command line, else from ``DEFECTSCOPE_TOKEN``; refuses none."""
    token = cli_token or environ.get(TOKEN_ENV, "")
    return check_token(token)


def check_token(token: str | None) -> str:
    if not token:
        raise ConfigError(f"the service needs a token: pass --token or set {TOKEN_ENV} "
                          "(for example: export DEFECTSCOPE_TOKEN=$(openssl rand -hex 16))")
    if token != token.strip():
        raise ConfigError("the token must not start or end with whitespace")
    return token


def require_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries the app's bearer token."""
    expected: str = request.app.state.ctx.token
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "missing token: send the header 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong token",
                            headers={"WWW-Authenticate": "Bearer"})
