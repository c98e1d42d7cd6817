"""A teacher behind any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama,
llama.cpp server, LM Studio...).

Images go inline as base64 JPEG data URLs (decoded with facelm.imageio, so EXIF rotation, CMYK and
16-bit files are handled, and downscaled to `max_side` to bound tokens). Requests are async; the job
bounds how many are in flight. Transient failures (429, 5xx, timeouts, dropped connections,
malformed bodies) are retried with exponential backoff and full jitter, waiting at least what the
server's Retry-After / retry-after-ms asks. Token counts come from each response's `usage`.
`base_url` may list several endpoints (facelm.teacher.endpoints): a request that meets a connection
error, timeout or 5xx is retried at once on another endpoint, and each reply names its endpoint.
"""
from __future__ import annotations

import asyncio
import base64
import io
import os
import random
import time
from contextlib import asynccontextmanager, nullcontext
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from typing import Any, AsyncIterator

from ..errors import FaceLMError
from .base import Task, Teacher, TeacherError, TeacherFatalError, TeacherReply
from .endpoints import Endpoint, EndpointPool, parse_endpoints
from .http import Response, TransportError, TransportTimeout, make_transport

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# USD per million (input, output) tokens, list prices of 2025; --price-in/--price-out override.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00), "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00), "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1-nano": (0.10, 0.40),
}
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# These say every request would fail alike (bad key, no access, wrong URL or model name).
FATAL_STATUS = frozenset({401, 403, 404})
# These may mean the server behind the endpoint is down or broken: retried on another endpoint.
FAILOVER_STATUS = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class OpenAIConfig:
    model: str = "gpt-4o-mini"
    base_url: str = DEFAULT_BASE_URL  # or several: "URL1,URL2#16" (URL#N: N requests in flight)
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 120.0
    max_retries: int = 8
    backoff_base_s: float = 0.25      # first retry waits up to this, doubling
    backoff_cap_s: float = 30.0
    retry_after_cap_s: float = 300.0  # a server asking for longer than this is not waited on
    max_tokens: int = 400
    temperature: float = 0.7
    max_side: int = 1024              # images are downscaled so the longer side is at most this
    price_in: float | None = None     # USD per million prompt tokens (None: PRICES or unknown)
    price_out: float | None = None
    transport: str = "auto"           # "lean" | "httpx" | "auto" (httpx when a proxy is set)
    cooldown_s: float = 10.0          # an endpoint that keeps failing rests this long

    @property
    def name(self) -> str:
        """'openai:MODEL@BASE_URL', as records and manifests name the teacher."""
        return f"openai:{self.model}@{self.base_url}"


class OpenAITeacher(Teacher):
    def __init__(self, cfg: OpenAIConfig):
        self.cfg = cfg
        self.name = cfg.name
        key = os.environ.get(cfg.api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # No connection limit here: the job's semaphore and the pool's caps bound requests.
        try:
            self._pool = EndpointPool(
                parse_endpoints(cfg.base_url),
                lambda url: make_transport(url, headers, cfg.timeout_s, cfg.transport),
                cfg.cooldown_s)
        except (ValueError, KeyError) as exc:
            raise FaceLMError(f"cannot use this endpoint ({exc})", item=cfg.base_url,
                              hint="give --base-url like https://api.openai.com/v1") from exc
        self._images: dict[str, asyncio.Future] = {}
        self._limit: Any = None
        self._fatal: TeacherFatalError | None = None   # once seen, no request is sent again
        self._rng = random.Random(0)
        self.price_in, self.price_out = _prices(cfg)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self.cfg), "price_in": self.price_in,
                "price_out": self.price_out, "endpoints": self._pool.stats()}

    async def aclose(self) -> None:
        await self._pool.aclose()

    def slots(self, concurrency: int) -> int:
        return self._pool.set_default_limit(concurrency)

    def share_limit(self, limit: Any) -> bool:
        # Held per HTTP exchange only: a request sleeping before its retry frees its slot, so the
        # job keeps `concurrency` requests on the wire while faults are being retried.
        self._limit = limit
        return True

    @asynccontextmanager
    async def _slot(self, tried: set[str]) -> AsyncIterator[Endpoint]:
        async with self._limit or nullcontext():
            if self._fatal is not None:   # decided while this request waited for its slot
                raise self._fatal
            async with self._pool.lease(tried) as ep:
                yield ep

    async def _send(self, ep: Endpoint, body: dict[str, Any]) -> Response | str:
        """The response, or why none came (the connection failed or timed out)."""
        try:
            return await ep.client.post_json("/chat/completions", body)
        except TransportTimeout:
            return f"timed out after {self.cfg.timeout_s:g} s"
        except TransportError as exc:
            return f"connection error ({exc})"

    async def complete(self, task: Task) -> TeacherReply:
        content: list[dict[str, Any]] = [{"type": "text", "text": task.prompt.user}]
        for path in task.prompt.images:
            url = await self._data_url(path)
            content.append({"type": "image_url", "image_url": {"url": url}})
        body = {"model": self.cfg.model, "max_tokens": self.cfg.max_tokens,
                "temperature": self.cfg.temperature,
                "messages": [{"role": "system", "content": task.prompt.system},
                             {"role": "user", "content": content}]}
        return await self.post(body, item=",".join(task.prompt.images) or task.kind)

    async def post(self, body: dict[str, Any], item: str = "") -> TeacherReply:
        """POST /chat/completions with retries; the reply's text and usage."""
        start, last, tried = time.monotonic(), "no attempt", set()   # tried: endpoints that failed
        for attempt in range(self.cfg.max_retries + 1):
            wait = None
            async with self._slot(tried) as ep:
                resp = await self._send(ep, body)
            if isinstance(resp, str) or resp.status in FAILOVER_STATUS:
                # The endpoint may be down: count it, and send the retry elsewhere.
                last = resp if isinstance(resp, str) else f"HTTP {resp.status}: {_snippet(resp)}"
                self._pool.failed(ep)
                tried.add(ep.url)
                if attempt < self.cfg.max_retries and self._pool.has_untried(tried):
                    continue   # another endpoint takes it now: no backoff
            elif resp.status == 200:
                parsed = _parse(resp)
                if isinstance(parsed, str):
                    last = parsed
                else:
                    self._pool.succeeded(ep)
                    return self._reply(parsed, start, attempt + 1, ep.url)
            elif resp.status in FATAL_STATUS:
                self._fatal = TeacherFatalError(f"HTTP {resp.status}: {_snippet(resp)}",
                                                item=self.name,
                                                hint=_fatal_hint(resp.status, self.cfg))
                raise self._fatal
            elif resp.status in RETRY_STATUS:
                last, wait = f"HTTP {resp.status}: {_snippet(resp)}", retry_after(resp)
            else:
                raise TeacherError(f"HTTP {resp.status}: {_snippet(resp)}", item=item)
            if attempt < self.cfg.max_retries:
                await asyncio.sleep(self._delay(attempt, wait))
        down = self._pool.all_down()
        raise TeacherError(f"gave up after {self.cfg.max_retries + 1} attempts; last: {last}",
                           item=item, hint=f"all {len(self._pool.endpoints)} endpoints are down; "
                           "check that the servers are up" if down else None)

    def _delay(self, attempt: int, retry_after_s: float | None) -> float:
        # Full jitter (AWS architecture blog): spreads the retries of many clients hit at once.
        backoff = self._rng.uniform(0, min(self.cfg.backoff_cap_s,
                                           self.cfg.backoff_base_s * 2 ** attempt))
        if retry_after_s is None:
            return backoff
        if retry_after_s > self.cfg.retry_after_cap_s:
            raise TeacherError(f"the server asks to retry after {retry_after_s:.0f} s",
                               item=self.name, hint="a rate limit or quota is exhausted; "
                               "raise --retry-after-cap or try later")
        # Never earlier than asked; a little jitter so a burst of 429s does not return in lockstep.
        return retry_after_s + self._rng.uniform(0, 0.1 * retry_after_s + 0.01)

    def _reply(self, parsed: dict[str, Any], start: float, attempts: int,
               endpoint: str) -> TeacherReply:
        usage = parsed.get("usage") or {}
        pin, pout = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        cost = None
        if self.price_in is not None and self.price_out is not None:
            cost = (pin * self.price_in + pout * self.price_out) / 1e6
        choice = parsed["choices"][0]
        text = _text(choice["message"].get("content"))
        if choice.get("finish_reason") == "content_filter":
            text = ""  # filtered: treated as a refusal by the job
        return TeacherReply(text.strip(), {"prompt_tokens": pin, "completion_tokens": pout,
                                           "cost_usd": cost, "attempts": attempts,
                                           "latency_s": round(time.monotonic() - start, 3),
                                           "endpoint": endpoint})

    async def _data_url(self, path: str) -> str:
        # The eight aspects of one photo share one encoding (and its failure).
        fut = self._images.get(path)
        if fut is None:
            fut = asyncio.ensure_future(asyncio.to_thread(encode_image, path, self.cfg.max_side))
            self._images[path] = fut
            if len(self._images) > 256:  # forget the oldest finished encodings
                for k in [k for k, f in self._images.items() if f.done()][:128]:
                    self._images.pop(k, None)
        return await fut


def encode_image(path: Any, max_side: int = 1024) -> str:
    """A data URL of the image (a path, bytes, RGB array or PIL image) as an RGB JPEG, its longer
    side at most `max_side`."""
    from PIL import Image

    from ..imageio import load_rgb
    img = Image.fromarray(load_rgb(path))
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def retry_after(resp: Any) -> float | None:
    """Seconds the server asks us to wait: retry-after-ms, or Retry-After (seconds or HTTP date)."""
    ms = resp.headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    ra = resp.headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(ra).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _parse(resp: Any) -> dict[str, Any] | str:
    """The body as a dict, or why it is malformed (then the request is retried)."""
    try:
        body = resp.json()
        content = body["choices"][0]["message"]
        if not isinstance(content, dict):
            raise TypeError("message is not an object")
        return body
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"malformed response body ({type(exc).__name__}: {_snippet(resp)})"


def _text(content: Any) -> str:
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def _snippet(resp: Any, n: int = 160) -> str:
    return " ".join(resp.text[:n].split())


def _fatal_hint(status: int, cfg: OpenAIConfig) -> str:
    if status == 401:
        return f"check the API key in ${cfg.api_key_env}"
    if status == 403:
        return "the key has no access to this model or endpoint"
    return f"check --base-url ({cfg.base_url}) and --model ({cfg.model})"


def _prices(cfg: OpenAIConfig) -> tuple[float | None, float | None]:
    known = PRICES.get(cfg.model, (None, None))
    return (cfg.price_in if cfg.price_in is not None else known[0],
            cfg.price_out if cfg.price_out is not None else known[1])


def load(**kwargs: Any) -> OpenAITeacher:
    try:
        return OpenAITeacher(OpenAIConfig(**{k: v for k, v in kwargs.items() if v is not None}))
    except TypeError as exc:
        raise FaceLMError(f"bad teacher option ({exc})") from exc
