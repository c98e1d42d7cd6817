"""`create_app(config)`: the FastAPI application, with its worker pool started in the lifespan.

    from facelm.serve.app import create_app
    from facelm.serve.config import ServeConfig
    app = create_app(ServeConfig(workers=2))      # then: uvicorn.run(app, host=..., port=...)
"""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from .. import __version__
from . import chat, routes
from .config import ServeConfig
from .errors import install_handlers
from .guard import HostCheck, quiet_query_strings
from .intake import Intake
from .pool import WorkerPool

STATIC = Path(__file__).with_name("static")
log = logging.getLogger("uvicorn.error")  # configured by uvicorn: shown beside its messages
# The page loads nothing from elsewhere (the machine may be offline, and photos stay local);
# the policy makes the browser enforce that, and blob: lets the page preview the chosen photos.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def create_app(config: ServeConfig, *, warm: bool | None = None) -> FastAPI:
    """The app for `config`; models load and workers warm when the server starts it."""
    config.validate()
    do_warm = config.warm if warm is None else warm

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = app.state.pool
        quiet_query_strings()  # here, not at import: uvicorn has configured its loggers by now
        try:
            await pool.start()
        except BaseException:
            pool.close()
            raise
        app.state.text_model = pool.info.get("text_model")
        app.state.chat_model = pool.info.get("chat_model")
        if app.state.chat_model is None:
            log.warning("facelm serve: no chat model (facelm.models.evidence is not installed); "
                        "start with --model SPEC to enable /v1/chat/completions")
        try:
            yield
        finally:
            await asyncio.to_thread(pool.close)

    app = FastAPI(title="facelm", version=__version__, lifespan=lifespan,
                  # Swagger UI and ReDoc load from a CDN, which an offline machine cannot reach;
                  # the schema itself is served at /openapi.json.
                  docs_url=None, redoc_url=None,
                  description="Face verification with explanations, face description by aspect, "
                              "and an OpenAI-compatible chat endpoint. See docs/serve.md.")
    app.state.config = config
    app.state.pool = WorkerPool(config.workers, config.queue, model=config.model, warm=do_warm)
    app.state.intake = Intake(config.readers, config.body_timeout)
    app.state.text_model = app.state.chat_model = None
    app.state.started = int(time.time())
    install_handlers(app)
    app.include_router(routes.router)
    app.include_router(chat.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Added before the headers middleware, so that one wraps it and refusals carry the headers too.
    app.add_middleware(HostCheck, allowed=config.host_allowlist())

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    return app
