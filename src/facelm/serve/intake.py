"""Receiving request bodies, before admission to the analysis queue.

A body is read in full first, within a deadline, and only then does the request take one of the
`--queue` slots. Were the slot taken first, a client sending one byte every few seconds would hold
it for as long as it liked: eight such clients kept a queue of 8 full, and every other request got
503 (issue 14). Receiving is bounded on its own instead: at most `readers` bodies at once (memory:
each is at most the request's size limit) and `timeout` seconds each, after which the client gets
408 and its connection is closed.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, TypeVar

from .errors import APIError

T = TypeVar("T")


class Intake:
    """Counts bodies being received; touched only on the event loop's thread, so no lock."""

    def __init__(self, readers: int, timeout: float):
        self.readers = readers
        self.timeout = timeout
        self.active = 0
        self.rejected = 0
        self.timed_out = 0

    async def read(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """await fn(*args) (which reads the body) within the deadline and the reader limit."""
        if self.active >= self.readers:
            self.rejected += 1
            raise APIError(503, f"the server is receiving {self.active} uploads already",
                           type="server_busy", hint="retry in a few seconds",
                           headers={"Retry-After": "2", "Connection": "close"})
        self.active += 1
        try:
            return await asyncio.wait_for(fn(*args), self.timeout)
        except TimeoutError:
            self.timed_out += 1
            raise APIError(408, f"the request body did not arrive within {self.timeout:g} s",
                           type="request_timeout",
                           hint="send the whole body at once; on a slow link, send a smaller photo",
                           headers={"Connection": "close"}) from None
        finally:
            self.active -= 1

    def stats(self) -> dict[str, Any]:
        return {"receiving": self.active, "receive_limit": self.readers,
                "receive_timeout_s": self.timeout, "timed_out": self.timed_out,
                "rejected_receiving": self.rejected}
