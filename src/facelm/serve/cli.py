"""`facelm serve`: the HTTP API and the web page. Imports FastAPI and uvicorn only when run."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from .config import (ANY_HOST, DEFAULT_HOST, DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_PORT, LOOPBACK_NAMES,
                     MAX_HEADER_BYTES, TOKEN_ENV, ConfigError, ServeConfig, base_url, token_from_env)


def add_parser(subparsers: Any) -> None:
    from ..imageio import DEFAULT_MAX_PIXELS
    p = subparsers.add_parser(
        "serve", help="HTTP API and web page for verification and face questions",
        description=f"Serve the API (/v1/verify, /v1/describe, /v1/search, /v1/chat/completions, "
                    f"/healthz) and "
                    f"the page at /. Binds to {DEFAULT_HOST} by default; any other host needs "
                    f"{TOKEN_ENV} set, and clients then send `Authorization: Bearer <token>`.")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--model", metavar="SPEC",
                   help="FaceVLM for chat completions and for the texts of verify/describe: "
                        "'evidence', a checkpoint folder or a Hugging Face model")
    p.add_argument("--workers", type=int, default=ServeConfig.workers,
                   help="analysis processes, each with its own models (default %(default)d)")
    p.add_argument("--queue", type=int, default=ServeConfig.queue,
                   help="requests in progress at once, running or waiting; more get 503 (default %(default)d)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_BYTES / 2**20,
                   help="largest accepted photo in MiB (default %(default)g)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="largest accepted photo in pixels (default %(default)d; JPEGs are reduced "
                        "on decode first)")
    p.add_argument("--body-timeout", type=float, default=ServeConfig.body_timeout, metavar="S",
                   help="seconds a client has to send a whole request body; slower gets 408 "
                        "(default %(default)g)")
    p.add_argument("--readers", type=int, default=ServeConfig.readers,
                   help="request bodies received at once, before the queue; more get 503 "
                        "(default %(default)d)")
    p.add_argument("--allowed-hosts", metavar="NAMES", default="",
                   help=f"comma-separated Host names to answer besides {', '.join(LOOPBACK_NAMES)}, "
                        f"or '{ANY_HOST}' for any. Without a token only those loopback names are "
                        f"accepted (a defence against DNS rebinding); with a token, any by default")
    p.add_argument("--index", metavar="GALLERY",
                   help="a gallery folder (facelm index build) to search with /v1/search")
    p.add_argument("--no-warm", action="store_true",
                   help="do not load the face models at start-up (the first requests pay for it)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=handler)


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    return ServeConfig(host=args.host, port=args.port, token=token_from_env(),
                       max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels,
                       workers=args.workers, queue=args.queue, model=args.model,
                       warm=not args.no_warm, body_timeout=args.body_timeout, readers=args.readers,
                       allowed_hosts=tuple(h.strip() for h in args.allowed_hosts.split(",") if h.strip()),
                       index=args.index).validate()


def handler(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"facelm serve: error: {exc}", file=sys.stderr)
        return 2
    if config.index is not None:  # a missing or mismatched gallery fails now, not at the first search
        from ..errors import FaceLMError
        from ..gallery import load
        try:
            load(config.index)
        except FaceLMError as exc:
            print(f"facelm serve: error: {exc}", file=sys.stderr)
            return 2
    import uvicorn

    from .app import create_app
    app = create_app(config)
    where = base_url(config.host, config.port) + "/"
    print(f"facelm serve: {where} (token {'required' if config.token else 'off'}; "
          f"{config.workers} workers, queue {config.queue})", file=sys.stderr, flush=True)
    # access_log stays on: method, path and status only, never bodies or file names; the app
    # drops query strings from it (guard.NoQueryString), so a `?token=` never reaches the log.
    uvicorn.run(app, host=config.host, port=config.port, log_level=args.log_level,
                server_header=False, timeout_graceful_shutdown=10,
                h11_max_incomplete_event_size=MAX_HEADER_BYTES)
    return 0
