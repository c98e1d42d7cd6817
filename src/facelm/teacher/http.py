"""A small keep-alive HTTP/1.1 client on asyncio streams, for many concurrent JSON POSTs.

Why not httpx for this: with 64 requests in flight on a 2-core machine, httpcore's connection pool
(an O(connections x requests) scan per request) and a failed `import sniffio` per request cost
4-5 ms of CPU each, which held 64-way concurrency to 50-70 % of the ideal throughput against a
200 ms server; this client reaches 90 %+ (benchmarks/bench_teacher.py). It does only what a chat
endpoint needs: POST with a Content-Length body over http or https (TLS with SNI and certificate
checks), responses framed by Content-Length, chunked encoding or connection close, and a pool of
idle connections. When a proxy is configured (HTTPS_PROXY / HTTP_PROXY), `make_transport` picks
httpx instead, which handles proxies.
"""
from __future__ import annotations

import asyncio
import json
import os
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class TransportError(Exception):
    """The connection failed or broke before a complete response arrived (retryable)."""


class TransportTimeout(TransportError):
    """No complete response within the timeout (retryable)."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]     # lower-cased names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


class LeanTransport:
    def __init__(self, base_url: str, headers: dict[str, str], timeout_s: float):
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host, self.tls = u.hostname, u.scheme == "https"
        self.port = u.port or (443 if self.tls else 80)
        self.prefix = u.path.rstrip("/")
        host_header = self.host if u.port is None else f"{self.host}:{u.port}"
        self.headers = {"Host": host_header, "User-Agent": "facelm", "Accept": "application/json",
                        "Content-Type": "application/json", **headers}
        self.timeout_s = timeout_s
        self._ssl = ssl.create_default_context() if self.tls else None
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post_json(self, path: str, body: Any) -> Response:
        data = json.dumps(body).encode("utf-8")
        head = [f"POST {self.prefix}{path} HTTP/1.1", f"Content-Length: {len(data)}"]
        head += [f"{k}: {v}" for k, v in self.headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data
        try:
            return await asyncio.wait_for(self._exchange(request), self.timeout_s)
        except asyncio.TimeoutError as exc:
            raise TransportTimeout(f"no response within {self.timeout_s:g} s") from exc

    async def _exchange(self, request: bytes) -> Response:
        # A pooled connection may have been closed by the server meanwhile: then one fresh try.
        while self._idle:
            conn = self._idle.pop()
            try:
                return await self._roundtrip(conn, request)
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                conn[1].close()
        try:
            conn = await asyncio.open_connection(self.host, self.port, ssl=self._ssl,
                                                 server_hostname=self.host if self.tls else None,
                                                 limit=2 ** 20)
            return await self._roundtrip(conn, request)
        except (ConnectionError, asyncio.IncompleteReadError, OSError, ValueError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc

    async def _roundtrip(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                         request: bytes) -> Response:
        reader, writer = conn
        writer.write(request)
        await writer.drain()
        try:
            status, headers, body, keep = await _read_response(reader)
        except BaseException:
            writer.close()  # a half-read response leaves the connection unusable
            raise
        if keep:
            self._idle.append(conn)
        else:
            writer.close()
        return Response(status, headers, body)

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ConnectionError(f"not an HTTP response: {lines[0][:60]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    keep = headers.get("connection", "").lower() != "close" and parts[0] != "HTTP/1.0"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif status in (204, 304):
        body = b""
    else:
        body, keep = await reader.read(), False   # framed by the connection closing
    return status, headers, body, keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(out)
        out += await reader.readexactly(size)
        await reader.readexactly(2)


class HttpxTransport:
    """The same interface over httpx (used when a proxy is configured)."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout_s: float):
        import httpx
        self._httpx = httpx
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers,
                                         timeout=timeout_s, trust_env=True)

    async def post_json(self, path: str, body: Any) -> Response:
        try:
            r = await self._client.post(path, json=body)
        except self._httpx.TimeoutException as exc:
            raise TransportTimeout(str(exc) or type(exc).__name__) from exc
        except self._httpx.TransportError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        return Response(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)

    async def aclose(self) -> None:
        await self._client.aclose()


TRANSPORTS = {"lean": LeanTransport, "httpx": HttpxTransport}


def make_transport(base_url: str, headers: dict[str, str], timeout_s: float,
                   kind: str = "auto") -> LeanTransport | HttpxTransport:
    """'lean' unless a proxy is configured for this URL's scheme ('auto'), or as asked."""
    if kind == "auto":
        scheme = urlsplit(base_url).scheme
        proxied = any(os.environ.get(v) for v in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY",
                                                   "all_proxy", "ALL_PROXY"))
        kind = "httpx" if proxied else "lean"
    return TRANSPORTS[kind](base_url, headers, timeout_s)
