"""The API's routes: verify, describe, search, health and the aspect list.

Order inside each handler: token (dependency) -> receive the body with its limits and deadline
(intake.py) -> admission (503 when full) -> work in a worker process. Receiving comes first so a
slow uploader never holds one of the few analysis slots; receiving has its own bound instead.
"""
from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from .. import __version__
from ..explain import ASPECT_TITLES, ASPECTS
from ..schema_version import stamp
from . import engine
from .auth import require_token
from .errors import APIError
from .openapi_docs import DESCRIBE_DOC, ERROR_RESPONSES, SEARCH_DOC, VERIFY_DOC, body_schema
from .schemas import (AspectList, DescribeFacesResult, DescribeResult, Health, SearchResult,
                      VerifyResult)
from .uploads import (BODY_SLACK, Form, base64_body_limit, clean_name, decode_base64_image,
                      name_field, parse_json, read_body, read_form)

router = APIRouter()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


# Routes return JSONResponse themselves: response_model documents the JSON in /openapi.json
# without validating each response again (tests/test_contracts_schema.py validates real ones).

@router.get("/healthz", response_model=Health,
            summary="Liveness and readiness, limits, and whether a token is needed")
async def healthz(request: Request) -> JSONResponse:
    state = request.app.state
    cfg = state.config
    body = {"status": "ok" if state.pool.ready else "starting", "version": __version__,
            "auth_required": cfg.token is not None, "max_upload_bytes": cfg.max_upload_bytes,
            "max_pixels": cfg.max_pixels, "text_model": state.text_model,
            "chat_model": state.chat_model, **state.pool.stats(), **state.intake.stats()}
    return JSONResponse(stamp(body), status_code=200 if state.pool.ready else 503)


@router.get("/v1/aspects", response_model=AspectList,
            summary="The eight face aspects describe answers, with their titles")
async def aspects() -> JSONResponse:
    return JSONResponse(stamp({"aspects": [{"name": a, "title": ASPECT_TITLES[a]} for a in ASPECTS]}))


@router.post("/v1/verify", dependencies=[Depends(require_token)], responses=ERROR_RESPONSES,
             openapi_extra=body_schema(VERIFY_DOC), response_model=VerifyResult,
             summary="Are two photos the same person?")
async def verify(request: Request) -> JSONResponse:
    """The same JSON as `facelm verify --json`: verdict, scores, explanation, both analyses."""
    state = request.app.state
    cfg = state.config
    form = await state.intake.read(read_images, request, ("image_a", "image_b"), cfg)
    opts = engine.VerifyOptions(fast=_bool(form, "fast"), threshold=_float(form, "threshold"),
                                seed=_int(form, "seed"), face=form.fields.get("face"))
    async with state.pool.slot():
        result = await state.pool.run(
            engine.verify, form.files["image_a"], form.names["image_a"], form.files["image_b"],
            form.names["image_b"], opts, cfg.max_pixels)
    return JSONResponse(stamp(result))


@router.post("/v1/describe", dependencies=[Depends(require_token)], responses=ERROR_RESPONSES,
             openapi_extra=body_schema(DESCRIBE_DOC),
             response_model=DescribeResult | DescribeFacesResult,  # the latter with face=all
             summary="Describe one face, aspect by aspect")
async def describe(request: Request) -> JSONResponse:
    """The same JSON as `facelm describe --json`: answers by aspect and the analysis."""
    state = request.app.state
    cfg = state.config
    form = await state.intake.read(read_images, request, ("image",), cfg)
    aspect = form.fields.get("aspect") or None
    if aspect is not None and aspect not in ASPECTS:
        raise APIError(422, f"unknown aspect {aspect!r}", item="aspect",
                       hint=f"use one of {', '.join(ASPECTS)}, or leave it out for all eight")
    seed = _int(form, "seed")
    async with state.pool.slot():
        result = await state.pool.run(engine.describe, form.files["image"], form.names["image"],
                                      aspect, seed, cfg.max_pixels, form.fields.get("face"))
    return JSONResponse(stamp(result))


@router.post("/v1/search", dependencies=[Depends(require_token)], responses=ERROR_RESPONSES,
             openapi_extra=body_schema(SEARCH_DOC), response_model=SearchResult,
             summary="Who in the server's gallery is this?")
async def search(request: Request) -> JSONResponse:
    """The same JSON as `facelm search IMG --index GALLERY --json`, on the gallery the server was
    started with (`facelm serve --index GALLERY`)."""
    state = request.app.state
    cfg = state.config
    if cfg.index is None:  # checked before reading the body: no upload is wasted
        raise APIError(503, "this server has no search gallery", type="index_not_configured",
                       hint="start it with --index GALLERY (a folder from facelm index build)")
    form = await state.intake.read(read_images, request, ("image",), cfg)
    k = _int(form, "k") if "k" in form.fields else 5
    if not 1 <= k <= 1000:
        raise APIError(422, f"k must be from 1 to 1000, not {k}", item="k", hint="e.g. 5")
    min_score = _min_score(form.fields.get("min_score"))
    async with state.pool.slot():
        result = await state.pool.run(engine.search, form.files["image"], form.names["image"],
                                      cfg.index, k, _int(form, "seed"), cfg.max_pixels, min_score)
    return JSONResponse(stamp(result))


async def read_images(request: Request, names: tuple[str, ...], cfg: Any) -> Form:
    """Image files from a multipart body, or base64 images from a JSON body, within limits."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        limit = len(names) * cfg.max_upload_bytes + BODY_SLACK
        form = await read_form(request, cfg.max_upload_bytes, limit)
        missing = [n for n in names if n not in form.files]
        if missing:
            raise APIError(422, "missing image file", item=missing[0],
                           hint=f"send the files as form fields {' and '.join(names)}, "
                                f"e.g. curl -F {names[0]}=@photo.jpg")
        for n in names:
            if not form.files[n]:
                raise APIError(422, "the file is empty (0 bytes)", item=form.names[n],
                               hint="choose the photo again")
        return form
    if ctype == "application/json":
        limit = base64_body_limit(len(names), cfg.max_upload_bytes, BODY_SLACK)
        obj = parse_json(await read_body(request, limit))
        missing = [n for n in names if n not in obj]
        if missing:
            raise APIError(422, "missing image", item=missing[0],
                           hint=f"send {' and '.join(names)} as base64 strings in the JSON object")
        labels = {n: name_field(n) for n in names}
        form = Form(fields={k: v for k, v in obj.items() if k not in names and k not in labels.values()})
        for n in names:
            form.files[n] = decode_base64_image(obj[n], n, cfg.max_upload_bytes)
            label = obj.get(labels[n])
            form.names[n] = clean_name(label if isinstance(label, str) else None, n)
        return form
    raise APIError(415, f"unsupported content type {ctype or '(none)'!r}", type="unsupported_media_type",
                   hint="send multipart/form-data with image files, or application/json with base64 images")


def _bool(form: Form, key: str) -> bool:
    value = form.fields.get(key, False)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise APIError(422, f"{value!r} is not true or false", item=key, hint="use true or false")


def _float(form: Form, key: str) -> float | None:
    value = form.fields.get(key)
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if isinstance(value, bool) or not math.isfinite(out):
        raise APIError(422, f"{value!r} is not a number", item=key, hint="e.g. 0.5")
    return out


def _min_score(value: object) -> float | None:
    """The optional `min_score` field (a form sends text, JSON a number): 422 when it is not one."""
    from ..errors import InputFormatError
    from ..identify import check_min_score
    try:
        return check_min_score(None if value in (None, "") else value)
    except InputFormatError as exc:
        raise APIError(422, exc.message, item="min_score",
                       hint="a number from -1 to 1, e.g. 0.827") from None


def _int(form: Form, key: str) -> int:
    value = form.fields.get(key, 0)
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise APIError(422, f"{value!r} is not a whole number", item=key, hint="e.g. 0") from None
