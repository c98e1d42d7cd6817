"""Checks that sit in front of every route: the Host allow-list, and an access log without query
strings.

Host: a web page on any site can make the browser send requests to http://127.0.0.1:8000 after
re-pointing its own DNS name there (DNS rebinding); the browser then sends that site's name as the
Host header. A token-less server on the loopback address therefore answers only to the names this
machine calls itself (config.host_allowlist). A request without a Host header (HTTP/1.0 tools) is
not from a browser and is let through.

Access log: uvicorn logs the path with its query string. A client that tries `?token=...` would
put its secret into the log, so the query string is dropped from every access log line.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from .config import ANY_HOST, host_name
from .errors import APIError

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class HostCheck:
    """ASGI middleware: 400 for an HTTP request whose Host is not in `allowed` (None: any)."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str] | None):
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.allowed is None or scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = next((v for k, v in scope.get("headers", ()) if k == b"host"), None)
        if host is None or host_name(host.decode("latin-1")) in self.allowed:
            return await self.app(scope, receive, send)
        await _refuse(send, sorted(self.allowed))


async def _refuse(send: Any, allowed: list[str]) -> None:
    err = APIError(400, "this server does not answer to that Host name", type="invalid_host",
                   item="Host", hint=f"open http://{allowed[0]}:<port>/ instead, or start the server "
                                     f"with --allowed-hosts NAME (or '{ANY_HOST}'); accepted now: "
                                     f"{', '.join(allowed)}")
    body = json.dumps(err.body()).encode()
    # The body was not read: close the connection rather than parse what follows it.
    await send({"type": "http.response.start", "status": err.status,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class NoQueryString(logging.Filter):
    """Drop the query string from uvicorn's access log lines (args: client, method, path, version,
    status); other records pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (args[0], args[1], args[2].partition("?")[0], *args[3:])
        return True


def quiet_query_strings(logger_name: str = "uvicorn.access") -> None:
    """Install NoQueryString on the access logger once (it is process-wide, like the logger)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, NoQueryString) for f in logger.filters):
        logger.addFilter(NoQueryString())
