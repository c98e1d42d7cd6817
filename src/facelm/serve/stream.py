"""Server-sent-event streaming of a chat completion (`"stream": true`), as OpenAI, vLLM and Ollama
send it: a first chunk with the role, content deltas, a chunk with `finish_reason`, with
`stream_options.include_usage` a last chunk holding the usage (and no choices), then `data: [DONE]`.

facelm's models return a whole text (the FaceVLM interface has no token callback), so the answer
is generated first and then sent in word-sized deltas: a client sees the same events as from a
token-streaming server, and their concatenation is exactly the non-streamed answer. A failure
therefore still arrives as an ordinary JSON error with its status, before any event is sent.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterator

from .errors import APIError

# Splits before each word that follows whitespace: "a b  c" -> "a ", "b  ", "c" (nothing lost).
_WORD_START = re.compile(r"(?<=\s)(?=\S)")


def stream_options(req: dict[str, Any]) -> tuple[bool, bool]:
    """(stream, include_usage) from an OpenAI chat request, or a 422."""
    stream = req.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise APIError(422, f"{stream!r} is not true or false", item="stream")
    opts = req.get("stream_options") or {}
    if not isinstance(opts, dict):
        raise APIError(422, "stream_options must be an object", item="stream_options",
                       hint="{\"include_usage\": true}")
    usage = opts.get("include_usage", False)
    if not isinstance(usage, bool):
        raise APIError(422, f"{usage!r} is not true or false", item="stream_options.include_usage")
    return bool(stream), usage


def deltas(text: str) -> list[str]:
    """The text in word-sized pieces (each word with the whitespace after it)."""
    return [piece for piece in _WORD_START.split(text) if piece]


def events(completion: dict[str, Any], include_usage: bool) -> Iterator[str]:
    """The SSE lines of a finished chat.completion object, chunk by chunk."""
    choice = completion["choices"][0]
    head = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"
    # With include_usage, every chunk has "usage": null but the last (as OpenAI sends them).
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None) -> str:
        body = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    for piece in deltas(choice["message"]["content"]):
        yield chunk({"content": piece}, None)
    yield chunk({}, choice["finish_reason"])
    if include_usage:
        body = {**head, "choices": [], "usage": completion["usage"]}
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"
