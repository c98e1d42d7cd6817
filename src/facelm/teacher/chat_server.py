"""A local OpenAI-compatible chat-completions server that misbehaves on purpose.

For tests and benchmarks of the `openai` teacher (and for trying a data job without an API key): a
real HTTP/1.1 server on 127.0.0.1 (keep-alive, Content-Length bodies) that answers
`POST /v1/chat/completions` after a set latency, and can inject 429s with Retry-After, 500s,
malformed bodies, hangs and refusals, at a random rate or on a fixed script.

    python -m facelm.teacher.chat_server --latency 0.2 --fault-rate 0.05   # prints its URL
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

REFUSAL = "I'm sorry, but I can't help with analysing people's faces."
FAULTS = ("429", "500", "malformed", "hang", "refuse", "401")
_VERDICT = re.compile(r"show (the same person|two different people)")


@dataclass
class ServerConfig:
    latency_s: float = 0.0
    fault_latency_s: float | None = None      # how long a 429/500/malformed takes (None: latency_s)
    fault_rate: float = 0.0                   # share of requests that get a random fault
    fault_kinds: tuple[str, ...] = ("429", "500", "malformed")
    retry_after_s: float = 0.1                # what a 429 asks for (sent as retry-after-ms too)
    hang_s: float = 3600.0                    # a "hang" answers after this long
    script: list[str] = field(default_factory=list)  # outcomes of the first requests, then random
    refuse: str = "never"                     # "never" | "always" | "unless_strict"
    invert_verdict: bool = False              # pair explanations state the opposite verdict
    chunked: bool = False                     # send bodies with Transfer-Encoding: chunked
    max_parallel: int = 0                     # answers worked on at once, the rest queue (0: any)
    seed: int = 0


class ChatServer:
    """The server in a background thread: `with ChatServer(cfg) as s: ... s.url ...`."""

    def __init__(self, cfg: ServerConfig | None = None, port: int = 0):
        self.cfg = cfg or ServerConfig()
        self.port = port
        self.requests: list[dict[str, Any]] = []   # every parsed request body, in arrival order
        self.outcomes: Counter = Counter()
        self._rng = random.Random(self.cfg.seed)
        self._script = list(self.cfg.script)
        self._busy: asyncio.Semaphore | None = None   # made in the server's loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "ChatServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "ChatServer":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        if self.cfg.max_parallel > 0:
            self._busy = asyncio.Semaphore(self.cfg.max_parallel)
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        # Connections still open (keep-alive, hanging answers) end with the server.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                # A GPU server batches so many sequences at once; the others wait their turn.
                async with self._busy or contextlib.nullcontext():
                    status, headers, body = await self.respond(*request)
                writer.write(_response(status, headers, body, self.cfg.chunked))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _outcome(self) -> str:
        if self._script:
            return self._script.pop(0)
        if self._rng.random() < self.cfg.fault_rate:
            return self._rng.choice(self.cfg.fault_kinds)
        return "ok"

    async def respond(self, method: str, path: str, raw: bytes) -> tuple[int, dict, bytes]:
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return 404, {}, b'{"error": {"message": "not found"}}'
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {}, b'{"error": {"message": "body is not JSON"}}'
        self.requests.append(body)
        outcome = self._outcome()
        self.outcomes[outcome] += 1
        fault_wait = self.cfg.latency_s if self.cfg.fault_latency_s is None else self.cfg.fault_latency_s
        wait = {"hang": self.cfg.hang_s, "ok": self.cfg.latency_s, "refuse": self.cfg.latency_s}
        await asyncio.sleep(wait.get(outcome, fault_wait))
        if outcome == "429":
            ms = int(self.cfg.retry_after_s * 1000)
            return 429, {"Retry-After": f"{self.cfg.retry_after_s:g}", "retry-after-ms": str(ms)}, \
                b'{"error": {"message": "rate limited", "type": "rate_limit"}}'
        if outcome == "401":
            return 401, {}, b'{"error": {"message": "Incorrect API key provided"}}'
        if outcome == "500":
            return 500, {}, b'{"error": {"message": "internal error"}}'
        if outcome == "malformed":
            return 200, {}, b'{"choices": [{"mess'
        return 200, {}, json.dumps(self.completion(body, refuse=outcome == "refuse")).encode()

    def completion(self, body: dict[str, Any], refuse: bool = False) -> dict[str, Any]:
        messages = body.get("messages") or [{}]
        system = str(messages[0].get("content", ""))
        user = messages[-1].get("content", "")
        text_in = user if isinstance(user, str) else " ".join(
            p.get("text", "") for p in user if isinstance(p, dict))
        strict = "never refuse" in system
        if refuse or self.cfg.refuse == "always" or (self.cfg.refuse == "unless_strict"
                                                     and not strict):
            text = REFUSAL
        else:
            text = _answer(text_in, self.cfg.invert_verdict, len(self.requests))
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion",
                "model": body.get("model", "local"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": len(json.dumps(body)) // 4,
                          "completion_tokens": len(text.split()),
                          "total_tokens": len(json.dumps(body)) // 4 + len(text.split())}}


def _answer(prompt: str, invert: bool, n: int) -> str:
    m = _VERDICT.search(prompt)
    if m is None:
        return (f"Reply {n}: the face is seen from the front in soft, even light; the features are "
                "clearly visible and the expression is calm.")
    same = (m.group(1) == "the same person") != invert
    verdict = "the same person" if same else "two different people"
    return (f"These photos show {verdict}. The eyes, nose and jawline "
            f"{'agree' if same else 'differ'} between photo A and photo B, while lighting and pose "
            "differ only slightly.")


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = (lines[0].split(" ") + ["", ""])[:3]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip() or 0)
    return method, path, await reader.readexactly(length) if length else b""


def _response(status: int, headers: dict[str, str], body: bytes, chunked: bool = False) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
              429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "Status")
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json",
             "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if chunked:  # in pieces of 100 bytes, as a streaming proxy might send it
        lines.append("Transfer-Encoding: chunked")
        pieces = [body[i:i + 100] for i in range(0, len(body), 100)] + [b""]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
    else:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="A local chat-completions server with injected faults.")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--fault-latency", type=float, default=None,
                   help="seconds a fault takes (default: --latency)")
    p.add_argument("--faults", default="429,500,malformed", help=f"kinds among {','.join(FAULTS)}")
    p.add_argument("--retry-after", type=float, default=0.1, help="seconds a 429 asks to wait")
    p.add_argument("--max-parallel", type=int, default=0,
                   help="requests answered at once, the rest queue, as on a GPU server (0: any)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    cfg = ServerConfig(latency_s=a.latency, fault_rate=a.fault_rate, fault_latency_s=a.fault_latency,
                       fault_kinds=tuple(a.faults.split(",")), retry_after_s=a.retry_after,
                       seed=a.seed, max_parallel=a.max_parallel)
    server = ChatServer(cfg, port=a.port).start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
