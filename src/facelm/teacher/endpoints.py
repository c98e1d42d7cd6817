"""Several OpenAI-compatible endpoints behind one teacher (e.g. one vLLM server per GPU node).

`--base-url` takes a comma-separated list (or the flag repeated); `URL#N` caps that endpoint at N
requests in flight, otherwise each endpoint gets `--concurrency`. A request goes to the endpoint
with the lowest share of its slots in use. An endpoint that fails FAIL_AFTER requests in a row
(connection errors, timeouts, 5xx) is down for a cool-down; then one probe request at a time goes
to it until one succeeds. When every endpoint is down a request still goes to the one back
soonest, so its retries and final failure are what they are with a single endpoint.

Single-threaded by design: the pool lives in the job's event loop and needs no locks.
"""
from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from ..errors import FaceLMError

FAIL_AFTER = 3          # failures in a row: one 500 among 5 % faults is not an outage
UNBOUNDED = 1 << 30     # no per-endpoint cap until the job says (the caller's semaphore bounds)


@dataclass
class Endpoint:
    url: str
    limit: int | None       # URL#N; None: the job's --concurrency
    client: Any
    in_flight: int = 0
    failures: int = 0       # in a row, since the last success
    down_until: float = 0.0
    answered: int = 0
    failed: int = 0

    def up(self, now: float) -> bool:
        return self.failures < FAIL_AFTER or now >= self.down_until

    def takes(self, now: float, cap: int) -> bool:
        """A free slot, and healthy (or past its cool-down with no probe out yet)."""
        if self.in_flight >= cap:
            return False
        return self.failures < FAIL_AFTER or (now >= self.down_until and self.in_flight == 0)


def parse_endpoints(text: str) -> list[tuple[str, int | None]]:
    """'URL1#4, URL2' -> [(URL1, 4), (URL2, None)]; a FaceLMError names a bad entry."""
    out: list[tuple[str, int | None]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        url, sep, n = part.partition("#")
        url = url.rstrip("/")
        if sep and not (n.isdigit() and int(n) > 0):
            raise FaceLMError(f"bad concurrency {n!r} in {part!r}", item="--base-url",
                              hint="write URL#N with N a positive whole number")
        if url in (u for u, _ in out):
            raise FaceLMError(f"{url} is given twice", item="--base-url",
                              hint="give each endpoint once; URL#N gives it N slots")
        out.append((url, int(n) if sep else None))
    if not out:
        raise FaceLMError("no endpoint given", item="--base-url",
                          hint="give --base-url like https://api.openai.com/v1")
    return out


class EndpointPool:
    def __init__(self, specs: list[tuple[str, int | None]], make_client: Callable[[str], Any],
                 cooldown_s: float = 10.0):
        self.endpoints = [Endpoint(url, limit, make_client(url)) for url, limit in specs]
        self.cooldown_s = cooldown_s
        self.default_limit = UNBOUNDED
        self._wake = asyncio.Event()

    def set_default_limit(self, per_endpoint: int) -> int:
        """Cap endpoints without URL#N at `per_endpoint`; the slots of all endpoints together."""
        self.default_limit = max(1, per_endpoint)
        return sum(self.cap(e) for e in self.endpoints)

    def cap(self, e: Endpoint) -> int:
        return e.limit if e.limit is not None else self.default_limit

    @asynccontextmanager
    async def lease(self, avoid: set[str]) -> AsyncIterator[Endpoint]:
        """A slot on an endpoint, preferring those not in `avoid` (the request's failed ones)."""
        while (ep := self._pick(avoid)) is None:
            await self._wake.wait()
        ep.in_flight += 1
        try:
            yield ep
        finally:
            ep.in_flight -= 1
            # Wake every waiter to re-pick: there are few, and which one fits depends on `avoid`.
            self._wake.set()
            self._wake = asyncio.Event()

    def _pick(self, avoid: set[str]) -> Endpoint | None:
        now = time.monotonic()
        ready = [e for e in self.endpoints if e.takes(now, self.cap(e))]
        fresh = [e for e in ready if e.url not in avoid] or ready
        if fresh:
            return min(fresh, key=lambda e: e.in_flight / self.cap(e))
        if any(e.up(now) for e in self.endpoints):
            return None   # wait for a slot (or a probe's outcome)
        free = [e for e in self.endpoints if e.in_flight < self.cap(e)]
        return min(free, key=lambda e: e.down_until) if free else None

    def succeeded(self, e: Endpoint) -> None:
        e.failures, e.answered = 0, e.answered + 1

    def failed(self, e: Endpoint) -> None:
        e.failures, e.failed = e.failures + 1, e.failed + 1
        now = time.monotonic()
        # Failures of requests sent before the outage was noticed do not extend the cool-down.
        if e.failures >= FAIL_AFTER and now >= e.down_until:
            e.down_until = now + self.cooldown_s

    def has_untried(self, tried: set[str]) -> bool:
        """Whether a request that failed on `tried` can fail over at once, without a backoff."""
        now = time.monotonic()
        return any(e.up(now) and e.url not in tried for e in self.endpoints)

    def all_down(self) -> bool:
        now = time.monotonic()
        return len(self.endpoints) > 1 and not any(e.up(now) for e in self.endpoints)

    def stats(self) -> list[dict[str, Any]]:
        """Per endpoint, for the manifest: its cap, replies it gave and requests that failed."""
        return [{"url": e.url, "concurrency": None if self.cap(e) == UNBOUNDED else self.cap(e),
                 "answered": e.answered, "failed": e.failed} for e in self.endpoints]

    async def aclose(self) -> None:
        for e in self.endpoints:
            await e.client.aclose()
