"""One JSON error shape for every failure the API reports.

    {"error": {"message": "...", "type": "...", "item": "image_a", "hint": "...", "status": 422}}

`error.message` and `error.type` are where OpenAI's API puts them, so OpenAI-compatible clients
show our messages unchanged.
"""
from __future__ import annotations

import logging
from typing import Any

from ..errors import FaceLMError, ImageLoadError, ImageTooLargeError, NoFaceError

log = logging.getLogger("uvicorn.error")

# facelm's own errors -> HTTP status. Too many pixels is a size limit like too many bytes (413);
# an undecodable image or a photo without a face is well-formed but unprocessable (422).
STATUS_BY_ERROR: dict[type, int] = {
    ImageTooLargeError: 413,
    ImageLoadError: 422,
    NoFaceError: 422,
}


class APIError(Exception):
    """An error with its HTTP status, raised anywhere in request handling."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 item: str | None = None, hint: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.item = item
        self.hint = hint
        self.headers = headers or {}

    def __reduce__(self) -> tuple:
        # Errors raised in a worker process travel back pickled; keep every field, not just args.
        return (_rebuild, (self.status, self.message, self.type, self.item, self.hint, self.headers))

    def body(self) -> dict[str, Any]:
        text = f"{self.item}: {self.message}" if self.item else self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        return {"error": {"message": text, "type": self.type, "item": self.item,
                          "hint": self.hint, "status": self.status}}


def _rebuild(status: int, message: str, type: str, item: str | None, hint: str | None,
             headers: dict[str, str]) -> APIError:
    return APIError(status, message, type=type, item=item, hint=hint, headers=headers)


def from_facelm(exc: FaceLMError) -> APIError:
    """Map a facelm error (which already names its item and what to do) to an APIError."""
    status = next((s for cls, s in STATUS_BY_ERROR.items() if isinstance(exc, cls)), 422)
    # The parts are kept separate in the JSON (str(exc) is "item: message (hint)").
    message = getattr(exc, "message", None) or str(exc)
    return APIError(status, message, type=type(exc).__name__, item=exc.item, hint=exc.hint)


def install_handlers(app: Any) -> None:
    """Route APIError, facelm errors, FastAPI validation errors and stray HTTP errors to the shape."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    def respond(err: APIError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    async def on_api_error(request: Any, exc: APIError) -> JSONResponse:
        return respond(exc)

    async def on_facelm_error(request: Any, exc: FaceLMError) -> JSONResponse:
        return respond(from_facelm(exc))

    async def on_validation(request: Any, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                             for e in exc.errors())
        return respond(APIError(422, f"invalid request: {problems}",
                                hint="see /openapi.json or docs/serve.md for the expected fields"))

    async def on_http(request: Any, exc: HTTPException) -> JSONResponse:
        hint = "see /openapi.json for the endpoints" if exc.status_code in (404, 405) else None
        return respond(APIError(exc.status_code, str(exc.detail), type="http_error", hint=hint,
                                headers=dict(exc.headers or {})))

    async def on_disconnect(request: Any, exc: ClientDisconnect) -> JSONResponse:
        # An aborted upload is the client's choice, not a server fault: one line, no traceback.
        # Nobody receives this response (uvicorn drops it, and logs no access line for it).
        log.info("facelm serve: client disconnected before sending the whole request (%s %s)",
                 request.method, request.url.path)
        return respond(APIError(400, "the client disconnected", type="client_disconnected"))

    async def on_unexpected(request: Any, exc: Exception) -> JSONResponse:
        # The traceback goes to the server log (it holds no request body); the client gets no
        # internals, only what to do.
        log.exception("facelm serve: unexpected error on %s %s", request.method, request.url.path)
        return respond(APIError(500, "internal error while handling the request", type="server_error",
                                hint="the server log has the details; please report it"))

    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(FaceLMError, on_facelm_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
