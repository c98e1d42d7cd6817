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
        "face": {"type": "string", "default": "central", "description": (
            "which face of each photo: central, largest, N (from 0, left to right) or all (every "
            "face of A against every face of B; `face_pair` names the best-matching pair)")},
    },
}
DESCRIBE_DOC: dict[str, Any] = {
    "files": {"image": "the photo"},
    "fields": {
        "aspect": {"type": "string", "enum": list(ASPECTS),
                   "description": "one aspect; leave out for all eight"},
        "seed": {"type": "integer", "default": 0, "description": "phrasing seed of the answers"},
        "face": {"type": "string", "default": "central", "description": (
            "which face: central, largest, N (from 0, left to right) or all (a `faces` list)")},
    },
}
SEARCH_DOC: dict[str, Any] = {
    "files": {"image": "the photo to look for in the server's gallery (facelm serve --index)"},
    "fields": {
        "k": {"type": "integer", "default": 5, "description": "matches to return, 1..1000"},
        "seed": {"type": "integer", "default": 0, "description": "phrasing seed of the explanation"},
        "min_score": {"type": "number", "description": "report only matches scoring at least this "
                      "(open-set threshold; 0.827 gave FPIR 1 % on LFW, docs/search.md)"},
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
        "seed": {"type": "integer"}, "n": {"type": "integer", "enum": [1]},
        "stream": {"type": "boolean", "default": False,
                   "description": "true: server-sent events (chat.completion.chunk), then [DONE]"},
        "stream_options": {"type": "object", "properties": {"include_usage": {
            "type": "boolean", "description": "a last chunk with the usage and no choices"}}},
    }}}}}}


def inline_schema(model: Any) -> dict[str, Any]:
    """A pydantic model's JSON schema with its $defs written in place: a schema placed inside
    /openapi.json by hand cannot refer to "#/$defs/..." (that would point at the document root)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items()}
        return [resolve(v) for v in node] if isinstance(node, list) else node
    return resolve(schema)


def chat_responses(chunk_model: Any) -> dict[int | str, dict[str, Any]]:
    """The errors, plus the event stream a 200 is when the request has "stream": true."""
    stream = {"schema": {**inline_schema(chunk_model), "description": (
        "with \"stream\": true: text/event-stream, one `data: {chunk}` line per event (this "
        "object), then `data: [DONE]`")}}
    return {**ERROR_RESPONSES, 200: {"description": "the completion, or its event stream",
                                     "content": {"text/event-stream": stream}}}
