"""`POST /v1/chat/completions` and `GET /v1/models` in the OpenAI format, so a facelm model can sit
wherever an OpenAI-compatible endpoint is expected (teacher, evaluated model, other tools).

The FaceVLM interface takes images and one prompt: the images are every `image_url` part of the
user messages, in order, and the prompt is the text of the last user message, after the text of
any system messages. Earlier assistant turns are not passed on. Images come as base64 data URLs;
http(s) URLs are refused, because the server fetches nothing from the network. `"stream": true`
answers with server-sent events (stream.py); `n` must be 1.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from .. import __version__
from . import engine
from .auth import require_token
from .errors import APIError
from .openapi_docs import CHAT_BODY, chat_responses
from .schemas import ChatCompletion, ChatCompletionChunk, ModelList
from .stream import events, stream_options
from .uploads import base64_body_limit, decode_base64_image, parse_json, read_body

router = APIRouter()
# Text around the images: prompts are short; this bounds the body together with the images.
TEXT_SLACK = 1024 * 1024
DEFAULT_MAX_TOKENS = 256


@router.get("/v1/models", dependencies=[Depends(require_token)], response_model=ModelList,
            summary="The model this server serves")
async def models(request: Request) -> dict[str, Any]:
    model = request.app.state.chat_model
    data = [] if model is None else [{"id": model, "object": "model",
                                      "created": request.app.state.started, "owned_by": "facelm"}]
    return {"object": "list", "data": data}


@router.post("/v1/chat/completions", dependencies=[Depends(require_token)],
             responses=chat_responses(ChatCompletionChunk), openapi_extra=CHAT_BODY,
             response_model=ChatCompletion,
             summary="OpenAI-format chat completion with images (\"stream\": true: server-sent events)")
async def chat_completions(request: Request) -> Response:
    state = request.app.state
    cfg = state.config
    model = state.chat_model
    if model is None:
        raise engine.no_chat_model()
    limit = base64_body_limit(cfg.max_images_per_chat, cfg.max_upload_bytes, TEXT_SLACK)
    req = parse_json(await state.intake.read(read_body, request, limit))
    images, prompt, gen = parse_request(req, cfg.max_upload_bytes, cfg.max_images_per_chat)
    stream, include_usage = stream_options(req)
    async with state.pool.slot():
        text = await state.pool.run(engine.chat, images, prompt, gen, cfg.max_pixels)
    if stream:  # the text is whole by now: see stream.py
        return StreamingResponse(events(completion(model, prompt, text), include_usage),
                                 media_type="text/event-stream")
    return JSONResponse(completion(model, prompt, text))


def parse_request(req: dict[str, Any], max_bytes: int,
                  max_images: int) -> tuple[list[bytes], str, dict[str, Any]]:
    """(image bytes, prompt, generation kwargs) from an OpenAI chat request, or a 400/422."""
    if req.get("n", 1) not in (1, None):
        raise APIError(400, "only one choice per request is supported", item="n", hint="send n=1")
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(422, "messages must be a non-empty list", item="messages",
                       hint="[{\"role\": \"user\", \"content\": [...]}]")
    system, user_texts, images = [], [], []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("system", "developer", "user", "assistant"):
            raise APIError(422, "each message needs a role (system, user or assistant) and content",
                           item=f"messages[{i}]")
        texts, imgs = _parts(msg.get("content"), i, max_bytes)
        if msg["role"] in ("system", "developer"):
            system += texts
        elif msg["role"] == "user":
            user_texts, images = texts, images + imgs
    if len(images) > max_images:
        raise APIError(413, f"{len(images)} images; at most {max_images} per request",
                       item="messages", hint="send fewer images")
    prompt = "\n\n".join(t for t in system + ["\n".join(user_texts)] if t)
    if not prompt.strip():
        raise APIError(422, "the last user message has no text", item="messages",
                       hint="add a text part with the question")
    return images, prompt, _generation(req)


def _parts(content: Any, i: int, max_bytes: int) -> tuple[list[str], list[bytes]]:
    if isinstance(content, str):
        return [content], []
    if not isinstance(content, list):
        raise APIError(422, "content must be a string or a list of parts", item=f"messages[{i}].content")
    texts, images = [], []
    for j, part in enumerate(content):
        item = f"messages[{i}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "image_url":
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            images.append(_image_from_url(url, item, max_bytes))
        else:
            raise APIError(422, f"unsupported content part type {kind!r}", item=item,
                           hint="use {\"type\": \"text\"} or {\"type\": \"image_url\"} parts")
    return texts, images


def _image_from_url(url: Any, item: str, max_bytes: int) -> bytes:
    if not isinstance(url, str):
        raise APIError(422, "image_url.url must be a string", item=item)
    if url.startswith(("http://", "https://")):
        raise APIError(400, "remote image URLs are not fetched (this server works offline)", item=item,
                       hint="send the image inline as a data:image/jpeg;base64,... URL")
    if not url.startswith("data:"):
        raise APIError(422, "image_url.url must be a data: URL", item=item,
                       hint="data:image/jpeg;base64,<base64 of the file>")
    return decode_base64_image(url, item, max_bytes)


def _generation(req: dict[str, Any]) -> dict[str, Any]:
    max_tokens = req.get("max_completion_tokens") or req.get("max_tokens") or DEFAULT_MAX_TOKENS
    temperature = req.get("temperature")
    seed = req.get("seed") or 0
    for key, value in (("max_tokens", max_tokens), ("seed", seed)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise APIError(422, f"{value!r} is not a non-negative whole number", item=key)
    if temperature is not None and (not isinstance(temperature, (int, float)) or temperature < 0):
        raise APIError(422, f"{temperature!r} is not a non-negative number", item="temperature")
    # Greedy unless the caller asks for a positive temperature: reproducible answers by default.
    sample = temperature is not None and temperature > 0
    return {"max_new_tokens": max_tokens, "do_sample": sample,
            "temperature": float(temperature) if sample else 1.0, "seed": seed}


def completion(model: str, prompt: str, text: str) -> dict[str, Any]:
    """An OpenAI chat.completion object. Token counts are whitespace word counts: the FaceVLM
    interface does not expose a tokenizer."""
    p, c = len(prompt.split()), len(text.split())
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": model, "system_fingerprint": f"facelm-{__version__}",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}
