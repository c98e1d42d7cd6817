"""OpenAPI descriptions of the bodies the routes parse themselves (multipart in memory, or JSON
with base64 images), so /openapi.json documents both forms even though FastAPI does not parse them."""
from __future__ import annotations

from typing import Any

from ..explain import ASPECTS
from .uploads import name_field

VERIFY_DOC: dict[str, Any] = {
    "files": {"image_a": "the first photo", "image_b": "the second photo"},
    "fields": {
        "fast": {"type": "boolean", "default": False,
                 "description": "identity only: skip age, gender and expression"},
        "threshold": {"type": "number", "description": "override the calibrated threshold"},
        "seed": {"type": "integer", "default": 0, "description": "phrasing seed of the explanations"},
    },
}
DESCRIBE_DOC: dict[str, Any] = {
    "files": {"image": "the photo"},
    "fields": {
        "aspect": {"type": "string", "enum": list(ASPECTS),
                   "description": "one aspect; leave out for all eight"},
        "seed": {"type": "integer", "default": 0, "description": "phrasing seed of the answers"},
    },
}
_ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "message": {"type": "string"}, "type": {"type": "string"}, "item": {"type": "string"},
    "hint": {"type": "string"}, "status": {"type": "integer"}}}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("malformed body (bad JSON of any depth, bad multipart), or a Host the server "
                "does not answer to"),
    401: _error("missing or wrong token (only when the server has FACELM_TOKEN)"),
    408: _error("the body did not arrive within the server's --body-timeout"),
    413: _error("an upload above the byte limit, or an image above the pixel limit"),
    415: _error("neither multipart/form-data nor application/json"),
    422: _error("not an image, truncated, no face found, or a bad field"),
    503: _error("server busy (queue full or too many uploads being received): retry after "
                "the Retry-After header's seconds"),
}


def body_schema(doc: dict[str, Any]) -> dict[str, Any]:
    """openapi_extra for a route taking images as multipart files or base64 JSON strings."""
    required = list(doc["files"])
    multipart = {name: {"type": "string", "format": "binary", "description": text}
                 for name, text in doc["files"].items()}
    b64 = {name: {"type": "string", "format": "byte",
                  "description": f"{text}: base64, or a data:image/...;base64, URL"}
           for name, text in doc["files"].items()}
    # JSON has no file names: name_a/name_b/name play that part (the `source` in the result).
    b64.update({name_field(name): {
        "type": "string", "description": f"optional name of {text}, reported as its source"}
        for name, text in doc["files"].items()})
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": required,
                                           "properties": {**multipart, **doc["fields"]}}},
        "application/json": {"schema": {"type": "object", "required": required,
                                        "properties": {**b64, **doc["fields"]}}},
    }}}


_PART = {"type": "object", "properties": {
    "type": {"type": "string", "enum": ["text", "image_url"]}, "text": {"type": "string"},
    "image_url": {"type": "object", "properties": {"url": {
        "type": "string", "description": "data:image/jpeg;base64,... (http(s) URLs are refused)"}}}}}
CHAT_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "required": ["messages"], "properties": {
        "model": {"type": "string", "description": "ignored: the server serves one model"},
        "messages": {"type": "array", "items": {"type": "object", "required": ["role", "content"],
                     "properties": {"role": {"type": "string", "enum": ["system", "user", "assistant"]},
                                    "content": {"oneOf": [{"type": "string"},
                                                          {"type": "array", "items": _PART}]}}}},
        "max_tokens": {"type": "integer"}, "max_completion_tokens": {"type": "integer"},
        "temperature": {"type": "number", "description": "sampling only when > 0"},
        "seed": {"type": "integer"}, "stream": {"type": "boolean", "enum": [False]},
    }}}}}}
