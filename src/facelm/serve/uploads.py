"""Request bodies into memory, within limits: multipart form parts and base64 JSON images.

Uploads are never written to disk: Starlette's own form parser spools files over 1 MB to a
temporary file, so multipart bodies are parsed here with python-multipart's streaming parser into
bytes in memory, and the body is refused (413) as soon as it passes its limit.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from .errors import APIError

# Text fields (aspect, threshold, seed, ...) are short; this bounds a form full of junk.
MAX_FIELD_BYTES = 4096
MAX_PARTS = 16
# Room for the multipart boundaries, headers and the small fields around the files.
BODY_SLACK = 64 * 1024
# Requests nest a few levels (chat: messages -> content -> part -> image_url). Anything deeper is
# refused, so that no later repr(), str() or walk of the value can exceed Python's recursion limit.
MAX_JSON_DEPTH = 64
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+/-]*)(?:;[\w=.+-]+)*;base64,", re.IGNORECASE)
_UNSAFE_NAME = re.compile(r"[^\w .()+,-]")


@dataclass
class Form:
    """A parsed request: image bytes by field name and text fields."""
    files: dict[str, bytes] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)   # field -> client's file name (cleaned)
    fields: dict[str, Any] = field(default_factory=dict)  # str from forms; JSON types from JSON


def too_large(what: str, limit: int) -> APIError:
    # Connection: close, so the server stops receiving (and discarding) the rest of the body.
    return APIError(413, f"upload is larger than the {limit / 1e6:.3g} MB limit", item=what,
                    type="payload_too_large",
                    hint="send a smaller or more compressed photo (a face needs well under 1 MB), "
                         "or restart the server with a larger --max-upload-mb",
                    headers={"Connection": "close"})


def base64_body_limit(images: int, max_bytes: int, slack: int) -> int:
    """Largest JSON body holding `images` base64 images of at most `max_bytes` each, plus `slack`."""
    return images * math.ceil(max_bytes * 4 / 3) + slack


def name_field(image_field: str) -> str:
    """The JSON key naming an image (image_a -> name_a): it becomes the analysis' `source`, as a
    multipart file name does, so both forms give the same JSON for the same name."""
    return image_field.replace("image", "name", 1)


async def _chunks(request: Any, limit: int) -> AsyncIterator[bytes]:
    """The body's non-empty chunks, refused with 413 as soon as it passes `limit` bytes (at once
    when the declared Content-Length already does)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large("request body", limit)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large("request body", limit)
        if chunk:
            yield chunk


async def read_body(request: Any, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes `limit` bytes."""
    return b"".join([chunk async for chunk in _chunks(request, limit)])


def clean_name(name: str | None, default: str) -> str:
    """A client's file name, reduced to a short, printable base name for results and messages."""
    if not name:
        return default
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE_NAME.sub("_", base)[:100].strip()
    return base or default


async def read_form(request: Any, file_limit: int, body_limit: int) -> Form:
    """Parse a multipart/form-data body into memory with per-file and per-body limits."""
    try:
        from python_multipart.multipart import MultipartParser, parse_options_header
    except ImportError:  # python-multipart < 0.0.13 names its module `multipart`
        from multipart.multipart import MultipartParser, parse_options_header
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise APIError(400, "multipart body without a boundary",
                       hint="let your HTTP client build the multipart body (curl -F, requests files=)")
    state = _PartState(file_limit)
    parser = MultipartParser(boundary, state.callbacks(parse_options_header))
    async for chunk in _chunks(request, body_limit):
        _parse(parser.write, chunk)
    _parse(parser.finalize)
    return state.form


def _parse(step: Any, *args: Any) -> None:
    """One parser call; its errors on bad input become 400 (our limits' APIErrors pass through)."""
    try:
        step(*args)
    except APIError:
        raise
    except Exception as exc:  # noqa: BLE001 - the parser raises several types on bad input
        raise APIError(400, f"malformed multipart body ({exc})",
                       hint="let your HTTP client build the multipart body") from exc


class _PartState:
    """Collects parts from python-multipart's callbacks, enforcing the limits part by part."""

    def __init__(self, file_limit: int):
        self.form = Form()
        self.file_limit = file_limit
        self.parts = 0
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._name = ""
        self._filename: str | None = None
        self._data = bytearray()

    def callbacks(self, parse_options_header: Any) -> dict[str, Any]:
        def on_part_begin() -> None:
            self.parts += 1
            if self.parts > MAX_PARTS:
                raise APIError(400, f"more than {MAX_PARTS} form parts",
                               hint="send only the documented fields")
            self._headers, self._data = {}, bytearray()

        def on_header_field(data: bytes, start: int, end: int) -> None:
            self._field += data[start:end]

        def on_header_value(data: bytes, start: int, end: int) -> None:
            self._value += data[start:end]

        def on_header_end() -> None:
            self._headers[self._field.lower()] = self._value
            self._field, self._value = b"", b""

        def on_headers_finished() -> None:
            _, opts = parse_options_header(self._headers.get(b"content-disposition", b""))
            self._name = opts.get(b"name", b"").decode("utf-8", "replace")
            raw = opts.get(b"filename")
            self._filename = None if raw is None else raw.decode("utf-8", "replace")

        def on_part_data(data: bytes, start: int, end: int) -> None:
            self._data += data[start:end]
            limit = self.file_limit if self._filename is not None else MAX_FIELD_BYTES
            if len(self._data) > limit:
                raise too_large(self._name or "form field", limit)

        def on_part_end() -> None:
            self._store()

        return {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                "on_header_value": on_header_value, "on_header_end": on_header_end,
                "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
                "on_part_end": on_part_end}

    def _store(self) -> None:
        if self._filename is not None:
            self.form.files[self._name] = bytes(self._data)
            self.form.names[self._name] = clean_name(self._filename, self._name)
        else:
            self.form.fields[self._name] = bytes(self._data).decode("utf-8", "replace")


def parse_json(body: bytes) -> dict[str, Any]:
    """A JSON object body, or 400 saying what is wrong with it."""
    hint = "send a JSON object, or multipart/form-data with image files"
    try:
        obj = json.loads(body, parse_constant=_no_constant)
    except RecursionError:  # e.g. 200,000 nested `[`: the parser recurses once per level
        raise APIError(400, "the JSON body is nested too deeply", hint=hint) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer over 4300 digits
        raise APIError(400, f"the body is not valid JSON ({str(exc)[:200]})", hint=hint) from None
    if not isinstance(obj, dict):
        raise APIError(400, "the JSON body must be an object", hint="e.g. {\"image\": \"<base64>\"}")
    if _depth(obj) > MAX_JSON_DEPTH:
        raise APIError(400, f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep", hint=hint)
    return obj


def _depth(obj: Any) -> int:
    """Nesting depth of lists and dicts, without recursion (the input may be ~1000 deep)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def _no_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which are not JSON, and inf breaks int(seed) later.
    raise ValueError(f"{name} is not a JSON value")


def decode_base64_image(value: Any, item: str, limit: int) -> bytes:
    """Bytes of a base64 image (plain, or a `data:image/...;base64,` URL), within `limit`."""
    if not isinstance(value, str) or not value:
        raise APIError(422, "expected the image as a base64 string", item=item,
                       hint="base64-encode the file's bytes, optionally as a data:image/jpeg;base64, URL")
    match = _DATA_URL.match(value)
    payload = value[match.end():] if match else value
    if any(c.isspace() for c in payload[:200]) or payload[-1:].isspace():
        payload = "".join(payload.split())  # `base64` wraps lines at 76 characters
    if len(payload) * 3 // 4 > limit + 3:  # refuse before decoding, from the length alone
        raise too_large(item, limit)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise APIError(422, f"not valid base64 ({exc})", item=item,
                       hint="base64-encode the file's bytes (standard alphabet, with padding)") from exc
    if len(data) > limit:
        raise too_large(item, limit)
    return data
