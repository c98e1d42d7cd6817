"""Bearer-token check for the API (the page, its assets and /healthz stay open)."""
from __future__ import annotations

import hmac
from fastapi import Request

from .config import TOKEN_ENV
from .errors import APIError


def check_token(authorization: str | None, token: str | None) -> None:
    """Raise 401 unless `authorization` is `Bearer <token>`; no-op when the server has no token."""
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    # compare_digest: the time taken must not reveal how many leading characters were right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise APIError(401, "missing or wrong access token", type="authentication_error",
                       hint=f"send the header `Authorization: Bearer <token>` with the value of "
                            f"{TOKEN_ENV} the server was started with",
                       headers={"WWW-Authenticate": "Bearer"})


def require_token(request: Request) -> None:
    """FastAPI dependency: the token configured on the app, checked against the request."""
    check_token(request.headers.get("authorization"), request.app.state.config.token)
